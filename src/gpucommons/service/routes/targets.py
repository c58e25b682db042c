"""Declared targets (design note 0014): admins declare and remove them; reviewers and admins list them
and read what they attained; anyone else gets 403, since a target's figure sums every tenant's use."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from gpucommons.service.auth import AdminDep, PrincipalDep, require_staff
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.errors import error_responses
from gpucommons.service.schemas.common import MAX_LINE, Id
from gpucommons.service.schemas.targets import AttainmentRead, TargetCreate, TargetRead, TargetReportRead
from gpucommons.store import targets
from gpucommons.store.attainment import attainments
from gpucommons.store.reports import parse_period

router = APIRouter(prefix="/targets", tags=["reports"])
LATEST_CLOSED = "latest closed"


def _read(row: targets.TargetRow) -> TargetRead:
    return TargetRead(
        id=row.id,
        name=row.name,
        kind=row.kind,
        by=row.group_by,
        group=row.group_value,
        program_id=row.program_id,
        threshold=row.threshold,
        unit=row.unit,
        percentile=row.percentile,
        every=row.every,
        description=row.description,
        created_at=row.created_at,
    )


@router.post("", status_code=201, responses=error_responses(401, 403, 404, 409, 422))
def create_target(body: TargetCreate, _admin: AdminDep, session: SessionDep, now: NowDep) -> TargetRead:
    """Declare a target: a share of GPU-hours at least, GPU-hours at least, or a wait at most. 422 for
    a group that names nothing or a share above 100 %; 404 for an unknown program."""
    spec = targets.TargetSpec(
        name=body.name,
        kind=body.kind,
        by=body.by,
        group=body.group,
        threshold=body.threshold,
        program_id=body.program_id,
        percentile=body.percentile,
        every=body.every,
    )
    row = targets.create_target(session, spec, now)
    session.commit()
    return _read(row)


@router.get("", responses=error_responses(401, 403))
def list_targets(principal: PrincipalDep, session: SessionDep) -> list[TargetRead]:
    require_staff(principal)
    return [_read(row) for row in targets.list_targets(session)]


@router.get("/attainment", responses=error_responses(401, 403, 422))
def attainment(
    principal: PrincipalDep,
    session: SessionDep,
    now: NowDep,
    period: Annotated[str | None, Query(max_length=MAX_LINE, pattern=r"^[0-9A-Za-z-]+$")] = None,
) -> TargetReportRead:
    """Each target over ``period`` (``YYYY``, ``YYYY-Qn``, ``YYYY-MM``, ``YYYY-Www``, ``YYYY-MM-DD``):
    met, missed or no data, and by how much; without a period, each over its latest closed one."""
    require_staff(principal)
    span = parse_period(period) if period else None
    lines = attainments(session, span, now)
    return TargetReportRead(
        period=span.label if span is not None else LATEST_CLOSED,
        lines=[AttainmentRead.model_validate(line) for line in lines],
    )


@router.delete("/{target_id:int}", status_code=204, responses=error_responses(401, 403, 404, 422))
def delete_target(target_id: Id, _admin: AdminDep, session: SessionDep) -> Response:
    targets.delete_target(session, target_id)
    session.commit()
    return Response(status_code=204)
