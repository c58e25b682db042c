"""Programs (calls for proposals). Admins create, open and close them; anyone signed in reads them.
Auto-award and reclaim of a program are admin actions too (see ``awards.py`` for the award lifecycle)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from gpucommons.service.auth import AdminDep, PrincipalDep
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.schemas.allocation import AutoAwardRequest, AwardRead, ProgramCreate, ProgramRead
from gpucommons.store import awards as award_repo
from gpucommons.store import programs as program_repo

router = APIRouter(prefix="/programs", tags=["allocation"])


@router.post("", status_code=201)
def create_program(body: ProgramCreate, _admin: AdminDep, session: SessionDep) -> ProgramRead:
    row = program_repo.create_program(session, **body.model_dump())
    session.commit()
    return ProgramRead.model_validate(row)


@router.get("")
def list_programs(_principal: PrincipalDep, session: SessionDep) -> list[ProgramRead]:
    return [ProgramRead.model_validate(r) for r in program_repo.list_programs(session)]


@router.get("/{program_id}")
def get_program(program_id: int, _principal: PrincipalDep, session: SessionDep) -> ProgramRead:
    return ProgramRead.model_validate(program_repo.get_program(session, program_id))


def _set_status(session: SessionDep, program_id: int, status: Literal["open", "closed"]) -> ProgramRead:
    row = program_repo.set_program_status(session, program_id, status)
    session.commit()
    return ProgramRead.model_validate(row)


@router.post("/{program_id}/open")
def open_program(program_id: int, _admin: AdminDep, session: SessionDep) -> ProgramRead:
    return _set_status(session, program_id, "open")


@router.post("/{program_id}/close")
def close_program(program_id: int, _admin: AdminDep, session: SessionDep) -> ProgramRead:
    return _set_status(session, program_id, "closed")


@router.post("/{program_id}/auto-award", status_code=201)
def auto_award(
    program_id: int, body: AutoAwardRequest, _admin: AdminDep, session: SessionDep, now: NowDep
) -> list[AwardRead]:
    """Award reviewed proposals by mean score plus the non-capital bonus, in whole units, within the
    program's free capacity and per-organisation cap. Returns the new (pending) awards."""
    rows = award_repo.auto_award(session, program_id, now, body.starts_at)
    session.commit()
    return [AwardRead.model_validate(r) for r in rows]
