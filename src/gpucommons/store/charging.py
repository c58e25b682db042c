"""Ending a job's run segment in the database: meter it, charge its award, free its GPUs.

Used by every path that stops a running job (finished, failed, cancelled, timed out, lost, preempted),
so usage is written exactly once per segment: the segment is the job's allocations plus ``started_at``,
and both are cleared here. Flushes, never commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gpucommons.domain.cluster import Cluster
from gpucommons.metering import DEFAULT_DISCOUNTS, YOUTH_STARTUP_EXTRA_DISCOUNT, Pricing, meter_segment
from gpucommons.store.jobs import AllocationRow, JobRow, UsageRow
from gpucommons.store.models import AwardRow, InstitutionRow, ProgramRow, ProjectRow


def pricing_of(program: ProgramRow | None) -> Pricing:
    """A program's pricing; a program that sets no discounts (or no youth extra) gets the defaults."""
    if program is None:
        return Pricing(0.0)
    discounts = {str(k): float(v) for k, v in (program.discounts or {}).items()} or dict(DEFAULT_DISCOUNTS)
    youth = program.youth_startup_extra_discount or YOUTH_STARTUP_EXTRA_DISCOUNT
    return Pricing(program.price_krw_per_gpu_hour, discounts, youth)


def end_segment(session: Session, cluster: Cluster, job: JobRow, ended_at: datetime) -> UsageRow | None:
    """Meter and charge the segment ``job`` ran since ``job.started_at``; free its allocations."""
    allocations = session.scalars(select(AllocationRow).where(AllocationRow.job_id == job.id)).all()
    session.execute(delete(AllocationRow).where(AllocationRow.job_id == job.id))
    if job.started_at is None or not allocations:
        return None
    duration_s = max(0.0, (ended_at - job.started_at).total_seconds())
    job.attained_gpu_s += job.gpus * duration_s
    pool = cluster.pool_by_name[cluster.nodes[allocations[0].node_index].pool]
    site = cluster.site_by_name[pool.site]
    award = session.get(AwardRow, job.award_id) if job.award_id is not None else None
    program = session.get(ProgramRow, award.program_id) if award is not None else None
    project = session.get(ProjectRow, job.project_id)
    institution = session.get(InstitutionRow, project.institution_id) if project is not None else None
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
