"""Awards. Admins award by hand, activate, extend, expire due awards and reclaim unused capacity;
members, PIs and reviewers read the awards they may see (members: their projects only)."""

from __future__ import annotations

from fastapi import APIRouter

from gpucommons.service.auth import AdminDep, PrincipalDep, require_project_reader
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.schemas.allocation import (
    AwardCreate,
    AwardExtend,
    AwardRead,
    ReclaimRead,
    ReclaimRequest,
)
from gpucommons.store import awards as award_repo

router = APIRouter(prefix="/awards", tags=["allocation"])


@router.post("", status_code=201)
def create_award(body: AwardCreate, _admin: AdminDep, session: SessionDep, now: NowDep) -> AwardRead:
    terms = award_repo.AwardTerms(**body.model_dump())
    row = award_repo.create_award(session, terms, now)
    session.commit()
    return AwardRead.model_validate(row)


@router.get("")
def list_awards(
    principal: PrincipalDep, session: SessionDep, program_id: int | None = None
) -> list[AwardRead]:
    rows = award_repo.list_awards(session, principal.visible_project_ids(), program_id)
    return [AwardRead.model_validate(r) for r in rows]


@router.post("/expire")
def expire_due(_admin: AdminDep, session: SessionDep, now: NowDep) -> list[AwardRead]:
    """Expire every award whose period has ended (the server also does this on its own loop)."""
    rows = award_repo.expire_awards(session, now)
    session.commit()
    return [AwardRead.model_validate(r) for r in rows]


@router.post("/reclaim")
def reclaim(body: ReclaimRequest, _admin: AdminDep, session: SessionDep, now: NowDep) -> list[ReclaimRead]:
    """Take back guaranteed GPUs of awards used under their program's threshold (see the reclaim rule)."""
    rows = award_repo.reclaim_unused(session, now, body.utilization_by_award)
    session.commit()
    return [ReclaimRead.model_validate(r) for r in rows]


@router.get("/{award_id}")
def get_award(award_id: int, principal: PrincipalDep, session: SessionDep) -> AwardRead:
    row = award_repo.get_award(session, award_id)
    require_project_reader(principal, row.project_id)
    return AwardRead.model_validate(row)


@router.get("/{award_id}/reclaims")
def list_reclaims(award_id: int, principal: PrincipalDep, session: SessionDep) -> list[ReclaimRead]:
    row = award_repo.get_award(session, award_id)
    require_project_reader(principal, row.project_id)
    return [ReclaimRead.model_validate(r) for r in award_repo.list_reclaims(session, award_id)]


@router.post("/{award_id}/activate")
def activate(award_id: int, _admin: AdminDep, session: SessionDep, now: NowDep) -> AwardRead:
    row = award_repo.activate_award(session, award_id, now)
    session.commit()
    return AwardRead.model_validate(row)


@router.post("/{award_id}/extend")
def extend(award_id: int, body: AwardExtend, _admin: AdminDep, session: SessionDep, now: NowDep) -> AwardRead:
    row = award_repo.extend_award(session, award_id, body.ends_at, now)
    session.commit()
    return AwardRead.model_validate(row)
