"""Usage: the metered run segments of jobs, how a segment is ended and charged, and balances.

``end_segment`` ends a job's run segment: it meters it, charges its award and frees its GPUs. It is
used by every path that stops a running job (finished, failed, cancelled, timed out, lost, preempted),
so usage is written exactly once per segment: the segment is the job's allocations plus ``started_at``,
and both are cleared here. Flushes, never commits.

A scheduler step may end hundreds of segments in one session; the award, program, project and
institution rows they need are held for the session's life (``session.info``), because the session's
identity map keeps rows only while something references them, and would otherwise load the same four
rows again for every job.

Budget: a segment adds its device-hours times its ``rate`` to its award's ``gpu_hours_used``: 1 for an
award in device-hours, the job's speed on that model for one in reference GPU-hours (design note 0009).

Money: a segment is charged ``pricing.charge_krw`` at the payer's rate, given the GPU time of the
job's earlier segments under the same award (read from their usage rows, exactly, only when the job
has run before), so a job's segment charges add up to the quote of its whole GPU time.

``balances`` answers per project and award: GPU-hours, energy, won and budget left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import NamedTuple

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, validates

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.award import DEVICE_HOURS, unit_rate
from gpucommons.domain.cluster import Cluster
from gpucommons.metering import Billing, Pricing, gpu_seconds, meter_segment, rate_for
from gpucommons.metering.pricing import SECONDS_PER_HOUR, Rate, charge_krw
from gpucommons.store.awards import AwardRow
from gpucommons.store.base import (
    Base,
    RowT,
    UtcDateTime,
    checked_won,
)
from gpucommons.store.calls import ProgramRow
from gpucommons.store.jobs import AllocationRow, JobRow
from gpucommons.store.tenancy import InstitutionRow, ProjectRow


class UsageRow(Base):
    """One metered run segment of a job, charged to an award (see ``gpucommons.metering``); its
    ``cost_krw`` is whole won."""

    __tablename__ = "usage"
    __table_args__ = (
        Index("ix_usage_job_backend_ref", "job_id", "backend_ref"),
        Index("ix_usage_ended_at", "ended_at"),  # reports select by period (``store/reports.py``)
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    award_id: Mapped[int | None] = mapped_column(ForeignKey("awards.id"), nullable=True, index=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime)
    gpus: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(64))
    gpu_hours: Mapped[float] = mapped_column(Float)
    energy_kwh: Mapped[float] = mapped_column(Float)
    cost_krw: Mapped[int] = mapped_column(BigInteger)
    co2_kg: Mapped[float] = mapped_column(Float)
    flops: Mapped[float] = mapped_column(Float)
    backend_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the run it meters
    site: Mapped[str | None] = mapped_column(String(64), nullable=True)  # where it ran (NULL: before 0008)
    # Budget hours its award was charged per device-hour: 1, or the job's speed on ``model`` for an
    # award in reference GPU-hours, kept so a later speed table never recharges it (design note 0009).
    rate: Mapped[float] = mapped_column(Float, default=1.0, server_default="1.0")

    @validates("cost_krw")
    def _whole_won(self, key: str, value: int | float) -> int:
        return checked_won(key, value)


_HELD_ROWS = "gpuc_charging_rows"


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
    """A program's pricing exactly as it states it: no discounts it does not list, and a youth extra
    of 0.0 is none (segments charged to no program are free)."""
    if program is None:
        return Pricing(0)
    discounts = {str(k): float(v) for k, v in (program.discounts or {}).items()}
    return Pricing(program.price_krw_per_gpu_hour, discounts, program.youth_startup_extra_discount)


def billed_gpu_s(session: Session, job: JobRow) -> Fraction:
    """Exact GPU-seconds of ``job``'s stored segments charged to its current award. A job that never
    held GPUs for any time (``attained_gpu_s`` 0) has none, so its first segment costs no query."""
    if job.attained_gpu_s <= 0:
        return Fraction(0)
    award = UsageRow.award_id.is_(None) if job.award_id is None else UsageRow.award_id == job.award_id
    spans = session.execute(
        select(UsageRow.gpus, UsageRow.started_at, UsageRow.ended_at).where(UsageRow.job_id == job.id, award)
    )
    return sum((gpu_seconds(gpus, ended - started) for gpus, started, ended in spans), Fraction(0))


def _rate(session: Session, project_id: int, award: AwardRow | None) -> Rate:
    """The rate the project pays under ``award``'s program (list price when it states no discount)."""
    program = _held(session, ProgramRow, award.program_id if award is not None else None)
    project = _held(session, ProjectRow, project_id)
    institution = _held(session, InstitutionRow, project.institution_id if project is not None else None)
    kind = institution.kind if institution is not None else "enterprise"
    youth = bool(institution.youth_startup) if institution is not None else False
    return rate_for(pricing_of(program), kind, youth)


def end_segment(session: Session, cluster: Cluster, job: JobRow, ended_at: datetime) -> UsageRow | None:
    """Meter and charge the segment ``job`` ran since ``job.started_at``; free its allocations."""
    freed = delete(AllocationRow).where(AllocationRow.job_id == job.id).returning(AllocationRow.node_index)
    allocations = session.scalars(freed).all()
    if job.started_at is None or not allocations:
        return None
    held = ended_at - job.started_at
    billed = billed_gpu_s(session, job)
    job.attained_gpu_s += job.gpus * max(0.0, held.total_seconds())
    pool = cluster.pool_by_name[cluster.nodes[allocations[0]].pool]
    site = cluster.site_by_name[pool.site]
    award = _held(session, AwardRow, job.award_id)
    billing = Billing(_rate(session, job.project_id, award), billed)
    usage = meter_segment(pool.model, len(allocations), held, site, billing)
    rate = unit_rate(award.unit, cluster, job.job_class, pool.model.name) if award is not None else 1.0
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
        backend_ref=job.backend_ref or None,
        site=site.name,
        rate=rate,
    )
    session.add(row)
    if award is not None:
        # An increment in SQL, not read-modify-write: another writer's charge in between is kept.
        session.execute(
            update(AwardRow)
            .where(AwardRow.id == award.id)
            .values(gpu_hours_used=AwardRow.gpu_hours_used + usage.gpu_hours * rate)
        )
    return row


def extend_segment(
    session: Session, cluster: Cluster, job: JobRow, backend_ref: str, ended_at: datetime
) -> UsageRow | None:
    """Charge a segment the scheduler closed when it decided to stop the run (a preemption) up to when
    the run really ended: the process held its GPUs until it exited, and the next job on them starts
    only then (the backends see to that). ``job``: claimed by the caller. Returns the segment, or
    ``None`` when no segment of ``job`` meters ``backend_ref`` or it already ends at or after
    ``ended_at``. The segment is metered again over its new length at the site it ran at, and charged
    the quote of its new GPU time after the job's earlier segments, as ``end_segment`` charges it (a
    segment written before sites were recorded grows in proportion, which a segment of no length
    cannot: its energy, CO2 and FLOPs then stay 0)."""
    if not backend_ref:
        return None
    row = session.scalars(
        select(UsageRow).where(UsageRow.job_id == job.id, UsageRow.backend_ref == backend_ref)
    ).first()
    if row is None or ended_at <= row.ended_at:
        return None
    before = gpu_seconds(row.gpus, row.ended_at - row.started_at)
    after = gpu_seconds(row.gpus, ended_at - row.started_at)
    award_match = UsageRow.award_id.is_(None) if row.award_id is None else UsageRow.award_id == row.award_id
    earlier = session.execute(
        select(UsageRow.gpus, UsageRow.started_at, UsageRow.ended_at).where(
            UsageRow.job_id == job.id, award_match, UsageRow.started_at < row.started_at
        )
    )
    billed = sum((gpu_seconds(g, end - start) for g, start, end in earlier), Fraction(0))
    award = _held(session, AwardRow, row.award_id)
    grown_hours = float(after - before) / SECONDS_PER_HOUR
    rate = _rate(session, job.project_id, award)
    site = cluster.site_by_name.get(row.site) if row.site is not None else None
    if site is not None and row.model in CATALOG:
        usage = meter_segment(
            CATALOG[row.model], row.gpus, ended_at - row.started_at, site, Billing(rate, billed)
        )
        row.energy_kwh, row.co2_kg, row.flops = usage.energy_kwh, usage.co2_kg, usage.flops
    elif before > 0:
        scale = float(after / before)
        row.energy_kwh, row.co2_kg, row.flops = row.energy_kwh * scale, row.co2_kg * scale, row.flops * scale
    row.gpu_hours = float(after) / SECONDS_PER_HOUR
    row.cost_krw = charge_krw(rate, billed, after)
    row.ended_at = ended_at
    job.attained_gpu_s += float(after - before)
    if award is not None:
        session.execute(
            update(AwardRow)
            .where(AwardRow.id == award.id)
            .values(gpu_hours_used=AwardRow.gpu_hours_used + grown_hours * row.rate)
        )
    session.flush()
    return row


@dataclass(frozen=True)
class Balance:
    """Usage of one award (``award_id`` ``None``: segments charged to no award) of one project;
    ``cost_krw`` is the sum of its segments' whole-won charges."""

    project: str
    award_id: int | None
    model: str
    unit: str  # what ``gpu_hours_budget`` and ``gpu_hours_used`` count; ``gpu_hours`` is device-hours
    gpu_hours_budget: float | None
    gpu_hours_used: float
    gpu_hours: float
    cost_krw: int
    energy_kwh: float
    co2_kg: float
    flops: float


class _Totals(NamedTuple):
    gpu_hours: float
    cost_krw: int
    energy_kwh: float
    co2_kg: float
    flops: float


_NOTHING = _Totals(0.0, 0, 0.0, 0.0, 0.0)


def balances(session: Session, project_ids: set[int] | None) -> list[Balance]:
    """One line per award (and per project's unawarded usage), with metered totals. Won are summed
    as integers (PostgreSQL's ``sum`` of a ``bigint`` is a ``numeric``), never through a float."""
    sums = select(
        UsageRow.project_id,
        UsageRow.award_id,
        func.sum(UsageRow.gpu_hours),
        func.sum(UsageRow.cost_krw),
        func.sum(UsageRow.energy_kwh),
        func.sum(UsageRow.co2_kg),
        func.sum(UsageRow.flops),
    ).group_by(UsageRow.project_id, UsageRow.award_id)
    if project_ids is not None:
        sums = sums.where(UsageRow.project_id.in_(project_ids))
    totals: dict[tuple[int, int | None], _Totals] = {
        (p, a): _Totals(float(h or 0), int(c or 0), float(e or 0), float(co2 or 0), float(f or 0))
        for p, a, h, c, e, co2, f in session.execute(sums)
    }
    names = {p.id: p.name for p in session.scalars(select(ProjectRow))}
    awards = select(AwardRow).order_by(AwardRow.project_id, AwardRow.id)
    if project_ids is not None:
        awards = awards.where(AwardRow.project_id.in_(project_ids))
    out = []
    for award in session.scalars(awards):
        t = totals.pop((award.project_id, award.id), _NOTHING)
        out.append(
            Balance(
                names[award.project_id],
                award.id,
                award.model,
                award.unit,
                award.gpu_hours_budget,
                award.gpu_hours_used,
                *t,
            )
        )
    for (project_id, award_id), t in sorted(totals.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        out.append(Balance(names[project_id], award_id, "", DEVICE_HOURS, None, 0.0, *t))
    return out
