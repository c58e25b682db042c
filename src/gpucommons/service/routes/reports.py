"""Usage reports (design note 0010): everyone may ask; a reviewer or admin sees every project, anyone
else only the projects they belong to, so nobody sees another tenant's figures."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from gpucommons.metering import ASSUMED_UTILIZATION
from gpucommons.service.auth import PrincipalDep
from gpucommons.service.deps import SessionDep
from gpucommons.service.errors import error_responses
from gpucommons.service.routes.jobs import no_project, project_by_ref
from gpucommons.service.schemas.common import LINE_PATTERN, MAX_LINE
from gpucommons.service.schemas.reports import (
    ComputeLedgerRead,
    ComputeLineRead,
    TransparencyRead,
    UsageLineRead,
    UsageReportRead,
)
from gpucommons.store import compute, reports
from gpucommons.store.base import utcnow

router = APIRouter(prefix="/reports", tags=["reports"])

Grouping = Literal["project", "institution", "kind", "region", "program", "site", "model"]
Every = Literal["day", "week", "month", "quarter", "year"]
ProjectPath = Annotated[
    str, Path(min_length=1, max_length=MAX_LINE, pattern=LINE_PATTERN, description="project name or id")
]


@router.get("/usage", responses=error_responses(401, 422))
def usage_report(
    principal: PrincipalDep,
    session: SessionDep,
    by: Grouping = "project",
    period: Annotated[str | None, Query(max_length=MAX_LINE, pattern=r"^[0-9A-Za-z-]+$")] = None,
    every: Every | None = None,
) -> UsageReportRead:
    """GPU-hours, segments, jobs, energy, CO2, won and FLOPs of the segments that ended in ``period``
    (``YYYY``, ``YYYY-Qn``, ``YYYY-MM``, ``YYYY-Www``, ``YYYY-MM-DD``; none: all time), grouped ``by``;
    with ``every``, per day, week, month, quarter or year of it too (a time series)."""
    span = reports.parse_period(period)
    lines = reports.usage_report(session, by, span, principal.visible_project_ids(), every)
    return UsageReportRead(
        by=by, period=span.label, every=every, lines=[UsageLineRead.model_validate(x) for x in lines]
    )


@router.get("/compute", responses=error_responses(401, 422))
def compute_ledger(
    principal: PrincipalDep, session: SessionDep, by: compute.LedgerBy = "project"
) -> ComputeLedgerRead:
    """Each visible project's (``by=lineage``: each of its model lineages') cumulative training FLOPs
    against the 10^26 FLOPs threshold, with the utilization the estimate assumes."""
    lines = compute.compute_ledger(session, principal.visible_project_ids(), by)
    return ComputeLedgerRead(
        by=by,
        threshold_flops=compute.TRAINING_COMPUTE_THRESHOLD_FLOPS,
        utilization_assumed=ASSUMED_UTILIZATION,
        lines=[ComputeLineRead.model_validate(x) for x in lines],
    )


@router.get("/compute/{project}", responses=error_responses(401, 404, 422))
def transparency_report(
    project: ProjectPath, principal: PrincipalDep, session: SessionDep
) -> TransparencyRead:
    """A project's transparency report on its training compute: totals and status, by lineage, by
    accelerator model and by month, and how they were estimated. Its members, reviewers and admins
    may read it; anyone else is told no such project exists."""
    row = project_by_ref(session, project)
    if not principal.can_see_project(row.id):
        raise no_project(project)
    return TransparencyRead.model_validate(compute.transparency_report(session, row, utcnow()))
