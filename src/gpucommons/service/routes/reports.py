"""Usage reports (design note 0010): everyone may ask; a reviewer or admin sees every project, anyone
else only the projects they belong to, so nobody sees another tenant's figures."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from gpucommons.metering import ASSUMED_UTILIZATION
from gpucommons.service.auth import PrincipalDep
from gpucommons.service.deps import SessionDep
from gpucommons.service.errors import error_responses
from gpucommons.service.schemas.common import MAX_LINE
from gpucommons.service.schemas.reports import (
    ComputeLedgerRead,
    ComputeLineRead,
    UsageLineRead,
    UsageReportRead,
)
from gpucommons.store import reports

router = APIRouter(prefix="/reports", tags=["reports"])

Grouping = Literal["project", "institution", "kind", "region", "program", "site", "model"]
Every = Literal["day", "week", "month", "quarter", "year"]


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


@router.get("/compute", responses=error_responses(401))
def compute_ledger(principal: PrincipalDep, session: SessionDep) -> ComputeLedgerRead:
    """Each visible project's cumulative training FLOPs against the 10^26 FLOPs threshold, with the
    utilization the estimate assumes."""
    lines = reports.compute_ledger(session, principal.visible_project_ids())
    return ComputeLedgerRead(
        threshold_flops=reports.TRAINING_COMPUTE_THRESHOLD_FLOPS,
        utilization_assumed=ASSUMED_UTILIZATION,
        lines=[ComputeLineRead.model_validate(x) for x in lines],
    )
