"""Awards. Admins award by hand, activate, extend, expire due awards and reclaim unused capacity;
members, PIs and reviewers read the awards they may see (members: their projects only)."""

from __future__ import annotations

from fastapi import APIRouter

from gpucommons.service.auth import AdminDep, PrincipalDep, require_project_reader
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.errors import error_responses
from gpucommons.service.schemas.allocation import (
    AwardCreate,
    AwardExtend,
    AwardRead,
    ReclaimRead,
    ReclaimRequest,
)
from gpucommons.service.schemas.common import Id
from gpucommons.store import awards as award_repo
from gpucommons.store.base import not_found

router = APIRouter(prefix="/awards", tags=["allocation"])


@router.post("", status_code=201, responses=error_responses(401, 403, 404, 409, 422))
def create_award(body: AwardCreate, _admin: AdminDep, session: SessionDep, now: NowDep) -> AwardRead:
    terms = award_repo.AwardTerms(**body.model_dump())
    row = award_repo.create_award(session, terms, now)
    session.commit()
    return AwardRead.model_validate(row)


@router.get("", responses=error_responses(401, 422))
def list_awards(
    principal: PrincipalDep, session: SessionDep, program_id: Id | None = None
) -> list[AwardRead]:
    rows = award_repo.list_awards(session, principal.visible_project_ids(), program_id)
    return [AwardRead.model_validate(r) for r in rows]


@router.post("/expire", responses=error_responses(401, 403))
def expire_due(_admin: AdminDep, session: SessionDep, now: NowDep) -> list[AwardRead]:
    """Expire every award whose period has ended (the server also does this on its own loop)."""
    rows = award_repo.expire_awards(session, now)
    session.commit()
    return [AwardRead.model_validate(r) for r in rows]


@router.post("/reclaim", responses=error_responses(401, 403, 422))
def reclaim(body: ReclaimRequest, _admin: AdminDep, session: SessionDep, now: NowDep) -> list[ReclaimRead]:
    """Take back guaranteed GPUs of awards used under their program's threshold (see the reclaim rule)."""
    rows = award_repo.reclaim_unused(session, now, body.utilization_by_award)
    session.commit()
    return [ReclaimRead.model_validate(r) for r in rows]


@router.get("/{award_id:int}", responses=error_responses(401, 403, 404, 422))
def get_award(award_id: Id, principal: PrincipalDep, session: SessionDep) -> AwardRead:
    row = award_repo.get_award(session, award_id)
    require_project_reader(principal, row.project_id, not_found("award", award_id))
    return AwardRead.model_validate(row)


@router.get("/{award_id:int}/reclaims", responses=error_responses(401, 403, 404, 422))
def list_reclaims(award_id: Id, principal: PrincipalDep, session: SessionDep) -> list[ReclaimRead]:
    row = award_repo.get_award(session, award_id)
    require_project_reader(principal, row.project_id, not_found("award", award_id))
    return [ReclaimRead.model_validate(r) for r in award_repo.list_reclaims(session, award_id)]


@router.post("/{award_id:int}/activate", responses=error_responses(401, 403, 404, 409, 422))
def activate(award_id: Id, _admin: AdminDep, session: SessionDep, now: NowDep) -> AwardRead:
    row = award_repo.activate_award(session, award_id, now)
    session.commit()
    return AwardRead.model_validate(row)


@router.post("/{award_id:int}/extend", responses=error_responses(401, 403, 404, 409, 422))
def extend(award_id: Id, body: AwardExtend, _admin: AdminDep, session: SessionDep, now: NowDep) -> AwardRead:
    row = award_repo.extend_award(session, award_id, body.ends_at, now)
    session.commit()
    return AwardRead.model_validate(row)
