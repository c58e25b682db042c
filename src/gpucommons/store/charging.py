"""Ending a job's run segment in the database: meter it, charge its award, free its GPUs.

Used by every path that stops a running job (finished, failed, cancelled, timed out, lost, preempted),
so usage is written exactly once per segment: the segment is the job's allocations plus ``started_at``,
and both are cleared here. Flushes, never commits.

A scheduler step may end hundreds of segments in one session; the award, program, project and
institution rows they need are held for the session's life (``session.info``), because the session's
identity map keeps rows only while something references them, and would otherwise load the same four
rows again for every job.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from sqlalchemy import delete
from sqlalchemy.orm import Session

from gpucommons.domain.cluster import Cluster
from gpucommons.metering import DEFAULT_DISCOUNTS, YOUTH_STARTUP_EXTRA_DISCOUNT, Pricing, meter_segment
from gpucommons.store.base import Base
from gpucommons.store.jobs import AllocationRow, JobRow, UsageRow
from gpucommons.store.models import AwardRow, InstitutionRow, ProgramRow, ProjectRow

_HELD_ROWS = "gpuc_charging_rows"
RowT = TypeVar("RowT", bound=Base)


def _held(session: Session, row_type: type[RowT], row_id: int | None) -> RowT | None:
    """``session.get`` that keeps the row referenced until the session closes."""
    if row_id is None:
        return None
    held: dict[tuple[type[Base], int], Base | None] = session.info.setdefault(_HELD_ROWS, {})
    key = (row_type, row_id)
    if key not in held:
        held[key] = session.get(row_type, row_id)
    row = held[key]
    return row if isinstance(row, row_type) else None


def pricing_of(program: ProgramRow | None) -> Pricing:
    """A program's pricing; a program that sets no discounts (or no youth extra) gets the defaults."""
    if program is None:
        return Pricing(0.0)
    discounts = {str(k): float(v) for k, v in (program.discounts or {}).items()} or dict(DEFAULT_DISCOUNTS)
    youth = program.youth_startup_extra_discount or YOUTH_STARTUP_EXTRA_DISCOUNT
    return Pricing(program.price_krw_per_gpu_hour, discounts, youth)


def end_segment(session: Session, cluster: Cluster, job: JobRow, ended_at: datetime) -> UsageRow | None:
    """Meter and charge the segment ``job`` ran since ``job.started_at``; free its allocations."""
    freed = delete(AllocationRow).where(AllocationRow.job_id == job.id).returning(AllocationRow.node_index)
    allocations = session.scalars(freed).all()
    if job.started_at is None or not allocations:
        return None
    duration_s = max(0.0, (ended_at - job.started_at).total_seconds())
    job.attained_gpu_s += job.gpus * duration_s
    pool = cluster.pool_by_name[cluster.nodes[allocations[0]].pool]
    site = cluster.site_by_name[pool.site]
    award = _held(session, AwardRow, job.award_id)
    program = _held(session, ProgramRow, award.program_id if award is not None else None)
    project = _held(session, ProjectRow, job.project_id)
    institution = _held(session, InstitutionRow, project.institution_id if project is not None else None)
    kind = institution.kind if institution is not None else "enterprise"
    youth = bool(institution.youth_startup) if institution is not None else False
    usage = meter_segment(pool.model, len(allocations), duration_s, site, pricing_of(program), kind, youth)
    row = UsageRow(
        job_id=job.id,
        project_id=job.project_id,
        award_id=job.award_id,
        started_at=job.started_at,
        ended_at=ended_at,
        gpus=len(allocations),
        model=usage.model,
        gpu_hours=usage.gpu_hours,
        energy_kwh=usage.energy_kwh,
        cost_krw=usage.cost_krw,
        co2_kg=usage.co2_kg,
        flops=usage.flops,
    )
    session.add(row)
    if award is not None:
        award.gpu_hours_used += usage.gpu_hours
    return row
