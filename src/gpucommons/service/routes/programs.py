"""Programs (calls for proposals). Admins create, open and close them; anyone signed in reads them.
Auto-award and reclaim of a program are admin actions too (see ``awards.py`` for the award lifecycle)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from gpucommons.service.auth import AdminDep, PrincipalDep
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.errors import error_responses
from gpucommons.service.routes.common import ClusterDep
from gpucommons.service.schemas.allocation import AutoAwardRequest, AwardRead, ProgramCreate, ProgramRead
from gpucommons.service.schemas.common import Id
from gpucommons.store import awards as award_repo
from gpucommons.store import calls

router = APIRouter(prefix="/programs", tags=["allocation"])


@router.post("", status_code=201, responses=error_responses(400, 401, 403, 409, 422))
def create_program(
    body: ProgramCreate, _admin: AdminDep, session: SessionDep, cluster: ClusterDep
) -> ProgramRead:
    """A program promises GPUs of one model of the cluster the server schedules on, never more than
    the cluster has; it states its lifecycle reclaim rule at once or takes the default (the rule is
    checked whole before anything is stored)."""
    row = calls.create_program(session, cluster, **body.model_dump())
    session.commit()
    return ProgramRead.model_validate(row)


@router.get("", responses=error_responses(401))
def list_programs(_principal: PrincipalDep, session: SessionDep) -> list[ProgramRead]:
    return [ProgramRead.model_validate(r) for r in calls.list_programs(session)]


@router.get("/{program_id:int}", responses=error_responses(401, 404, 422))
def get_program(program_id: Id, _principal: PrincipalDep, session: SessionDep) -> ProgramRead:
    return ProgramRead.model_validate(calls.get_program(session, program_id))


def _set_status(session: SessionDep, program_id: Id, status: Literal["open", "closed"]) -> ProgramRead:
    row = calls.set_program_status(session, program_id, status)
    session.commit()
    return ProgramRead.model_validate(row)


@router.post("/{program_id:int}/open", responses=error_responses(401, 403, 404, 422))
def open_program(program_id: Id, _admin: AdminDep, session: SessionDep) -> ProgramRead:
    return _set_status(session, program_id, "open")


@router.post("/{program_id:int}/close", responses=error_responses(401, 403, 404, 422))
def close_program(program_id: Id, _admin: AdminDep, session: SessionDep) -> ProgramRead:
    return _set_status(session, program_id, "closed")


@router.post(
    "/{program_id:int}/auto-award", status_code=201, responses=error_responses(401, 403, 404, 409, 422)
)
def auto_award(
    program_id: Id, body: AutoAwardRequest, _admin: AdminDep, session: SessionDep, now: NowDep
) -> list[AwardRead]:
    """Award reviewed proposals by mean score plus the non-capital bonus, in whole units, within the
    program's free capacity and per-organisation cap. Returns the new (pending) awards."""
    rows = award_repo.auto_award(session, program_id, now, body.starts_at)
    session.commit()
    return [AwardRead.model_validate(r) for r in rows]
