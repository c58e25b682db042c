"""Awards and reclaims, as rows and repositories, and their lifecycle: hand awards, auto-award by
score, activate, extend, expire and reclaim. Every function flushes and never commits; ``now`` is
passed in (UTC), never read here.

Capacity accounting: a program's committed GPUs are the guaranteed GPUs of its pending and active
awards. Expiry and reclaim lower that sum, which is how freed servers are offered back: the next
auto-award round (or a hand award) can hand them to proposals still waiting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    String,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from gpucommons.awarding import AwardRules, Candidate, grant_by_score, reclaimable_gpus
from gpucommons.domain.award import AWARD_UNITS, DEVICE_HOURS
from gpucommons.errors import ConflictError, InvalidRequestError
from gpucommons.store.base import Base, UtcDateTime, get_row, one_of, utcnow
from gpucommons.store.calls import ProgramRow, ProposalRow, get_program, get_proposal, mean_scores
from gpucommons.store.tenancy import InstitutionRow, ProjectRow, get_project

AWARD_STATUSES = ("pending", "active", "expired", "reclaimed")


class AwardRow(Base):
    """What a project may use: a GPU-hour budget and/or guaranteed GPUs of one model, over
    [starts_at, ends_at). ``pending`` until activated (the agreement is signed), ``active`` while it
    counts, ``expired`` after ``ends_at``, ``reclaimed`` when all its guaranteed GPUs were taken back.
    ``unit`` is its program's: a budget in ``reference-hours`` pays for any model of the cluster, each
    device-hour at the job's speed there (``gpu_hours_used`` counts in that unit; design note 0009)."""

    __tablename__ = "awards"
    __table_args__ = (
        CheckConstraint(one_of("status", AWARD_STATUSES), name="status"),
        CheckConstraint("guaranteed_gpus >= 0", name="guaranteed"),
        CheckConstraint("ends_at > starts_at", name="period"),
        CheckConstraint(one_of("unit", AWARD_UNITS), name="budget_unit"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id"), nullable=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    model: Mapped[str] = mapped_column(String(64))
    gpu_hours_budget: Mapped[float | None] = mapped_column(Float, nullable=True)
    guaranteed_gpus: Mapped[int] = mapped_column(Integer, default=0)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    gpu_hours_used: Mapped[float] = mapped_column(Float, default=0.0)
    reclaimed_gpus: Mapped[int] = mapped_column(Integer, default=0)
    unit: Mapped[str] = mapped_column(String(16), default=DEVICE_HOURS, server_default=DEVICE_HOURS)
    # The last period whose reclaim rule was evaluated (0: none yet), so none is evaluated twice
    # (``store/lifecycle.py``, design note 0012).
    reclaim_checked_period: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ReclaimRow(Base):
    """A record of guaranteed GPUs and budget GPU-hours taken back from an award, and the utilization
    that justified it: measured GPU use under ``reclaim_unused``, GPU-hours used against planned under
    the lifecycle's table rule, which also names the ``period`` it evaluated (design note 0012)."""

    __tablename__ = "reclaims"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    award_id: Mapped[int] = mapped_column(ForeignKey("awards.id", ondelete="CASCADE"), index=True)
    reclaimed_gpus: Mapped[int] = mapped_column(Integer)
    utilization: Mapped[float] = mapped_column(Float)
    reclaimed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    reclaimed_gpu_hours: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    period: Mapped[int | None] = mapped_column(Integer, nullable=True)


COMMITTED_STATUSES = ("pending", "active")


@dataclass(frozen=True)
class AwardTerms:
    """What a hand award grants; ``starts_at`` defaults to now and ``ends_at`` to the program's duration."""

    project_id: int
    program_id: int
    proposal_id: int | None = None
    gpu_hours_budget: float | None = None
    guaranteed_gpus: int = 0
    starts_at: datetime | None = None
    ends_at: datetime | None = None


def committed_gpus(session: Session, program_id: int) -> int:
    query = select(func.coalesce(func.sum(AwardRow.guaranteed_gpus), 0)).where(
        AwardRow.program_id == program_id, AwardRow.status.in_(COMMITTED_STATUSES)
    )
    return int(session.scalar(query) or 0)


def committed_by_org(session: Session, program_id: int) -> dict[int, int]:
    """Guaranteed GPUs of the program's pending and active awards, per institution."""
    query = (
        select(ProjectRow.institution_id, func.sum(AwardRow.guaranteed_gpus))
        .join(ProjectRow, ProjectRow.id == AwardRow.project_id)
        .where(AwardRow.program_id == program_id, AwardRow.status.in_(COMMITTED_STATUSES))
        .group_by(ProjectRow.institution_id)
    )
    return {org: int(gpus or 0) for org, gpus in session.execute(query)}


def _check_fits(session: Session, program: ProgramRow, project: ProjectRow, gpus: int) -> None:
    if gpus % program.unit_gpus:
        raise InvalidRequestError(
            f"guaranteed_gpus {gpus} must be a multiple of the program unit ({program.unit_gpus} GPUs)"
        )
    left = program.capacity_gpus - committed_gpus(session, program.id)
    if gpus > left:
        raise ConflictError(f"program {program.name!r} has {left} GPUs left, {gpus} asked")
    if program.cap_per_org_gpus is not None:
        held = committed_by_org(session, program.id).get(project.institution_id, 0)
        if held + gpus > program.cap_per_org_gpus:
            raise ConflictError(
                f"institution {project.institution_id} would hold {held + gpus} GPUs of program "
                f"{program.name!r}, over its cap of {program.cap_per_org_gpus}"
            )


def _program_end(starts_at: datetime, program: ProgramRow) -> datetime:
    """Where an award of ``program`` starting at ``starts_at`` ends by default; a start so late that the
    program's duration leaves the calendar is bad input, not a crash."""
    try:
        return starts_at + timedelta(days=program.duration_days)
    except OverflowError:
        raise InvalidRequestError(
            f"starts_at {starts_at.isoformat()} plus program {program.name!r}'s {program.duration_days} days "
            "is past the end of the calendar"
        ) from None


def create_award(session: Session, terms: AwardTerms, now: datetime) -> AwardRow:
    """A pending award, checked against the program's unit, free capacity and per-organisation cap."""
    program = get_program(session, terms.program_id)
    project = get_project(session, terms.project_id)
    if terms.guaranteed_gpus < 0:
        raise InvalidRequestError(f"guaranteed_gpus must be >= 0, got {terms.guaranteed_gpus}")
    if terms.gpu_hours_budget is not None and terms.gpu_hours_budget < 0:
        raise InvalidRequestError(f"gpu_hours_budget must be >= 0, got {terms.gpu_hours_budget}")
    if terms.guaranteed_gpus == 0 and not terms.gpu_hours_budget:
        raise InvalidRequestError("an award needs guaranteed_gpus > 0, a gpu_hours_budget > 0, or both")
    starts_at = terms.starts_at or now
    ends_at = terms.ends_at or _program_end(starts_at, program)
    if ends_at <= starts_at:
        raise InvalidRequestError(
            f"ends_at {ends_at.isoformat()} is not after starts_at {starts_at.isoformat()}"
        )
    if terms.proposal_id is not None:
        proposal = get_proposal(session, terms.proposal_id)
        if (proposal.project_id, proposal.program_id) != (project.id, program.id):
            raise InvalidRequestError(
                f"proposal {proposal.id} is not this project's proposal to this program"
            )
        if proposal.status != "submitted":
            raise ConflictError(f"proposal {proposal.id} is already {proposal.status}")
        proposal.status = "awarded"
    _check_fits(session, program, project, terms.guaranteed_gpus)
    row = AwardRow(
        proposal_id=terms.proposal_id,
        project_id=project.id,
        program_id=program.id,
        model=program.model,
        unit=program.unit,
        gpu_hours_budget=terms.gpu_hours_budget,
        guaranteed_gpus=terms.guaranteed_gpus,
        starts_at=starts_at,
        ends_at=ends_at,
        status="pending",
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def auto_award(
    session: Session, program_id: int, now: datetime, starts_at: datetime | None = None
) -> list[AwardRow]:
    """Award the program's reviewed, still-submitted proposals by mean score (plus the non-capital
    bonus), in whole units, within free capacity and per-organisation caps. Unreviewed proposals wait."""
    program = get_program(session, program_id)
    scores = mean_scores(session, program_id)
    query = (
        select(ProposalRow, InstitutionRow)
        .join(ProjectRow, ProjectRow.id == ProposalRow.project_id)
        .join(InstitutionRow, InstitutionRow.id == ProjectRow.institution_id)
        .where(ProposalRow.program_id == program_id, ProposalRow.status == "submitted")
        .order_by(ProposalRow.submitted_at, ProposalRow.id)
    )
    candidates = [
        Candidate(p.id, inst.id, p.requested_gpus, scores[p.id], inst.region == "non_capital", order)
        for order, (p, inst) in enumerate(session.execute(query))
        if p.id in scores
    ]
    rules = AwardRules(
        capacity_left_gpus=program.capacity_gpus - committed_gpus(session, program_id),
        unit_gpus=program.unit_gpus,
        cap_per_org_gpus=program.cap_per_org_gpus,
        non_capital_bonus=program.non_capital_bonus,
    )
    awards = []
    for grant in grant_by_score(candidates, rules, committed_by_org(session, program_id)):
        proposal = get_proposal(session, grant.proposal_id)
        terms = AwardTerms(proposal.project_id, program_id, proposal.id, None, grant.gpus, starts_at)
        awards.append(create_award(session, terms, now))
    return awards


def get_award(session: Session, award_id: int) -> AwardRow:
    return get_row(session, AwardRow, award_id, "award")


def list_awards(
    session: Session, project_ids: set[int] | None = None, program_id: int | None = None
) -> list[AwardRow]:
    query = select(AwardRow).order_by(AwardRow.id)
    if project_ids is not None:
        query = query.where(AwardRow.project_id.in_(project_ids))
    if program_id is not None:
        query = query.where(AwardRow.program_id == program_id)
    return list(session.scalars(query))


def active_awards(session: Session, now: datetime) -> list[AwardRow]:
    """Awards that count right now: active and within their period (the scheduler's quotas)."""
    query = select(AwardRow).where(
        AwardRow.status == "active", AwardRow.starts_at <= now, AwardRow.ends_at > now
    )
    return list(session.scalars(query.order_by(AwardRow.id)))


def activate_award(session: Session, award_id: int, now: datetime) -> AwardRow:
    """Pending -> active, once the agreement is in place; an award past its end cannot start."""
    row = get_award(session, award_id)
    if row.status != "pending":
        raise ConflictError(f"award {award_id} is {row.status}; only pending awards can be activated")
    if row.ends_at <= now:
        raise ConflictError(f"award {award_id} ended at {row.ends_at.isoformat()}")
    row.status = "active"
    session.flush()
    return row


def extend_award(session: Session, award_id: int, ends_at: datetime, now: datetime) -> AwardRow:
    """Move the end later; an expired award extended into the future becomes active again."""
    row = get_award(session, award_id)
    if row.status == "reclaimed":
        raise ConflictError(f"award {award_id} was reclaimed and cannot be extended")
    if ends_at <= row.ends_at:
        raise InvalidRequestError(f"new ends_at {ends_at.isoformat()} is not after {row.ends_at.isoformat()}")
    if row.status == "expired":
        if ends_at <= now:
            raise InvalidRequestError(f"new ends_at {ends_at.isoformat()} is already past")
        program = get_program(session, row.program_id)
        _check_fits(session, program, get_project(session, row.project_id), row.guaranteed_gpus)
        row.status = "active"
    row.ends_at = ends_at
    session.flush()
    return row


def expire_awards(session: Session, now: datetime) -> list[AwardRow]:
    """Mark pending and active awards whose period has ended as expired; returns them."""
    query = select(AwardRow).where(AwardRow.status.in_(COMMITTED_STATUSES), AwardRow.ends_at <= now)
    rows = list(session.scalars(query.order_by(AwardRow.id)))
    for row in rows:
        row.status = "expired"
    session.flush()
    return rows


def _last_reclaim_at(session: Session, award_id: int) -> datetime | None:
    query = select(func.max(ReclaimRow.reclaimed_at)).where(ReclaimRow.award_id == award_id)
    value = session.scalar(query)
    return value if isinstance(value, datetime) else None


def reclaim_unused(
    session: Session, now: datetime, utilization_by_award: Mapping[int, float]
) -> list[ReclaimRow]:
    """Apply each program's reclaim rule: an active award whose guaranteed GPUs were used below
    ``reclaim_below_utilization`` over the last ``reclaim_after_days`` (measured by the caller, from
    metering) keeps only the whole units it used; the rest returns to the program. An award must have run
    a full window since it started (or since its last reclaim) first. Awards without a measurement are
    left alone. Returns one ``ReclaimRow`` per award reduced."""
    records: list[ReclaimRow] = []
    for award_id in sorted(utilization_by_award):
        utilization = utilization_by_award[award_id]
        award = session.get(AwardRow, award_id)
        if award is None or award.status != "active" or award.guaranteed_gpus == 0:
            continue
        program = get_program(session, award.program_id)
        if program.reclaim_below_utilization is None or program.reclaim_after_days is None:
            continue
        window = timedelta(days=program.reclaim_after_days)
        since = _last_reclaim_at(session, award.id) or award.starts_at
        if now - since < window or utilization >= program.reclaim_below_utilization:
            continue
        gpus = reclaimable_gpus(award.guaranteed_gpus, utilization, program.unit_gpus)
        if gpus == 0:
            continue
        award.guaranteed_gpus -= gpus
        award.reclaimed_gpus += gpus
        if award.guaranteed_gpus == 0 and not award.gpu_hours_budget:
            award.status = "reclaimed"
        record = ReclaimRow(award_id=award.id, reclaimed_gpus=gpus, utilization=utilization, reclaimed_at=now)
        session.add(record)
        records.append(record)
    session.flush()
    return records


def list_reclaims(session: Session, award_id: int | None = None) -> list[ReclaimRow]:
    query = select(ReclaimRow).order_by(ReclaimRow.id)
    if award_id is not None:
        query = query.where(ReclaimRow.award_id == award_id)
    return list(session.scalars(query))
