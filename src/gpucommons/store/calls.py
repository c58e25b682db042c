"""Calls for proposals: programs, the proposals submitted to them and their reviews, as rows and
repositories (flush, never commit). Awards made from them live in ``store/awards.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, validates

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.award import AWARD_UNITS, DEVICE_HOURS
from gpucommons.domain.cluster import Cluster
from gpucommons.domain.institution import INSTITUTION_KINDS
from gpucommons.errors import ConflictError, InvalidRequestError
from gpucommons.reclaiming import DEFAULT_PERIOD_DAYS, DEFAULT_WARNING_DAYS, ReclaimSchedule, ReclaimTable
from gpucommons.store.base import Base, UtcDateTime, add_named, checked_won, get_row, one_of, utcnow
from gpucommons.store.tenancy import get_project, get_user

PROGRAM_STATUSES = ("open", "closed")


PROPOSAL_STATUSES = ("submitted", "awarded", "rejected")


class ProgramRow(Base):
    """A call for proposals: capacity in GPUs of one model handed out in whole units (8 = whole 8-GPU
    servers), with a per-organisation cap, a score bonus for non-capital applicants, pricing with
    discounts per institution kind, and a reclaim rule for unused guaranteed capacity. ``unit``: what
    its awards' GPU-hour budgets count, ``device-hours`` or ``reference-hours`` (design note 0009)."""

    __tablename__ = "programs"
    __table_args__ = (
        CheckConstraint(one_of("status", PROGRAM_STATUSES), name="status"),
        CheckConstraint("capacity_gpus >= 0", name="capacity"),
        CheckConstraint("unit_gpus > 0", name="unit"),
        CheckConstraint(one_of("unit", AWARD_UNITS), name="budget_unit"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    model: Mapped[str] = mapped_column(String(64))
    capacity_gpus: Mapped[int] = mapped_column(Integer)
    unit_gpus: Mapped[int] = mapped_column(Integer, default=8)
    cap_per_org_gpus: Mapped[int | None] = mapped_column(Integer, nullable=True)
    non_capital_bonus: Mapped[float] = mapped_column(Float, default=0.0)
    duration_days: Mapped[int] = mapped_column(Integer)
    price_krw_per_gpu_hour: Mapped[int] = mapped_column(BigInteger, default=0)
    discounts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    youth_startup_extra_discount: Mapped[float] = mapped_column(Float, default=0.0)
    reclaim_below_utilization: Mapped[float | None] = mapped_column(Float, nullable=True)
    reclaim_after_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The lifecycle's reclaim rule (design note 0012): the usage-against-plan table as JSON
    # ``[[below, fraction], ...]`` (NULL: ``reclaiming.DEFAULT_RECLAIM_TABLE``), checked at the end of
    # every period of an award, with a warning that many days before.
    reclaim_table: Mapped[list[list[float]] | None] = mapped_column(JSON, nullable=True)
    reclaim_period_days: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_PERIOD_DAYS, server_default=str(DEFAULT_PERIOD_DAYS)
    )
    reclaim_warning_days: Mapped[int] = mapped_column(
        Integer, default=DEFAULT_WARNING_DAYS, server_default=str(DEFAULT_WARNING_DAYS)
    )
    unit: Mapped[str] = mapped_column(String(16), default=DEVICE_HOURS, server_default=DEVICE_HOURS)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    @validates("price_krw_per_gpu_hour")
    def _whole_won(self, key: str, value: int | float) -> int:
        return checked_won(key, value)


class ProposalRow(Base):
    """A project's application to a program; one per project per program."""

    __tablename__ = "proposals"
    __table_args__ = (
        UniqueConstraint("program_id", "project_id", name="uq_proposals_program_project"),
        CheckConstraint(one_of("status", PROPOSAL_STATUSES), name="status"),
        CheckConstraint("requested_gpus > 0", name="requested"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    submitted_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_gpus: Mapped[int] = mapped_column(Integer)
    justification: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ReviewRow(Base):
    """One reviewer's score (0-100) of one proposal; scoring again replaces it."""

    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("proposal_id", "reviewer_id", name="uq_reviews_proposal_reviewer"),
        CheckConstraint("score >= 0 AND score <= 100", name="score"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


PROGRAM_FIELDS = (
    "name",
    "model",
    "capacity_gpus",
    "unit_gpus",
    "cap_per_org_gpus",
    "non_capital_bonus",
    "duration_days",
    "price_krw_per_gpu_hour",
    "discounts",
    "youth_startup_extra_discount",
    "reclaim_below_utilization",
    "reclaim_after_days",
    "reclaim_table",
    "reclaim_period_days",
    "reclaim_warning_days",
    "unit",
    "status",
)


MAX_DURATION_DAYS = 3_650  # ten years; an award's end (start + duration) then always fits the calendar


def _check_days(name: str, days: object) -> None:
    if days is not None and not (isinstance(days, int) and 1 <= days <= MAX_DURATION_DAYS):
        raise InvalidRequestError(f"{name} must be 1..{MAX_DURATION_DAYS} days, got {days}")


def program_model(model: str, capacity_gpus: int, cluster: Cluster | None) -> str:
    """The catalog's spelling of ``model``, checked against the cluster when one is given: a program
    may only promise GPUs the cluster has, of a model it has. Without a cluster (tools that seed a
    database) only the catalog is checked."""
    known = {name.lower(): name for name in CATALOG}
    name = known.get(model.lower())
    if name is None:
        raise InvalidRequestError(f"model {model!r} is not in the accelerator catalog ({', '.join(CATALOG)})")
    if cluster is None:
        return name
    have = sum(p.gpus for p in cluster.pools if p.model.name == name)
    if have == 0:
        models = sorted({p.model.name for p in cluster.pools})
        raise InvalidRequestError(
            f"cluster {cluster.name!r} has no {name} GPUs; its models are {', '.join(models) or 'none'}"
        )
    if capacity_gpus > have:
        raise InvalidRequestError(
            f"capacity_gpus {capacity_gpus} is more than the {have} {name} GPUs of cluster {cluster.name!r}"
        )
    return name


def _validate_program(fields: Mapping[str, Any]) -> None:
    """Rules the database cannot state: caps and capacity in whole units, sane fractions."""
    unit = int(fields.get("unit_gpus", 8))
    if unit <= 0:
        raise InvalidRequestError(f"unit_gpus must be > 0, got {unit}")
    capacity = int(fields["capacity_gpus"])
    if capacity < 0 or capacity % unit:
        raise InvalidRequestError(f"capacity_gpus {capacity} must be a non-negative multiple of unit {unit}")
    cap = fields.get("cap_per_org_gpus")
    if cap is not None and (cap <= 0 or cap % unit):
        raise InvalidRequestError(f"cap_per_org_gpus {cap} must be a positive multiple of unit {unit}")
    for kind, off in dict(fields.get("discounts") or {}).items():
        if kind not in INSTITUTION_KINDS:
            raise InvalidRequestError(f"discount for unknown institution kind {kind!r}")
        if not 0.0 <= float(off) <= 1.0:
            raise InvalidRequestError(f"discount for {kind} must be within 0..1, got {off}")
    if (fields.get("reclaim_below_utilization") is None) != (fields.get("reclaim_after_days") is None):
        raise InvalidRequestError("set both reclaim_below_utilization and reclaim_after_days, or neither")
    _check_days("duration_days", fields.get("duration_days", 1))
    _check_days("reclaim_after_days", fields.get("reclaim_after_days"))
    budget_unit = fields.get("unit", DEVICE_HOURS)
    if budget_unit not in AWARD_UNITS:
        raise InvalidRequestError(f"unknown budget unit {budget_unit!r}; known: {', '.join(AWARD_UNITS)}")


def reclaim_rule_values(table: object | None, period_days: int, warning_days: int) -> dict[str, Any]:
    """The columns of a lifecycle reclaim rule (design note 0012): ``table`` as JSON bands (``None``:
    the default table), evaluated every ``period_days`` with a warning ``warning_days`` before;
    ``InvalidRequestError`` names what does not hold."""
    parsed = None if table is None else ReclaimTable.parse(table)
    schedule = ReclaimSchedule(period_days, warning_days)
    if schedule.period_days > MAX_DURATION_DAYS:
        raise InvalidRequestError(
            f"reclaim period must be at most {MAX_DURATION_DAYS} days, got {schedule.period_days}"
        )
    return {
        "reclaim_table": None if parsed is None else parsed.to_json(),
        "reclaim_period_days": schedule.period_days,
        "reclaim_warning_days": schedule.warning_days,
    }


def create_program(session: Session, cluster: Cluster | None = None, **fields: Any) -> ProgramRow:
    """A new program. With ``cluster`` (the service passes the one it schedules on) the model must be
    one of its pools' and the capacity at most its GPUs of that model; see ``program_model``."""
    unknown = set(fields) - set(PROGRAM_FIELDS)
    if unknown:
        raise InvalidRequestError(f"unknown program fields: {', '.join(sorted(unknown))}")
    _validate_program(fields)
    fields.update(
        reclaim_rule_values(
            fields.get("reclaim_table"),
            int(fields.get("reclaim_period_days", DEFAULT_PERIOD_DAYS)),
            int(fields.get("reclaim_warning_days", DEFAULT_WARNING_DAYS)),
        )
    )
    fields["model"] = program_model(str(fields["model"]), int(fields["capacity_gpus"]), cluster)
    return add_named(session, ProgramRow(**fields), ProgramRow.name, fields["name"], "program")


def get_program(session: Session, program_id: int) -> ProgramRow:
    return get_row(session, ProgramRow, program_id, "program")


def list_programs(session: Session) -> list[ProgramRow]:
    return list(session.scalars(select(ProgramRow).order_by(ProgramRow.id)))


def set_program_status(session: Session, program_id: int, status: str) -> ProgramRow:
    row = get_program(session, program_id)
    row.status = status
    session.flush()
    return row


def submit_proposal(
    session: Session,
    program_id: int,
    project_id: int,
    submitted_by: int,
    requested_gpus: int,
    justification: str,
    now: datetime,
) -> ProposalRow:
    """A project applies once per program, for whole allocation units, while the program is open."""
    program = get_program(session, program_id)
    get_project(session, project_id)
    if program.status != "open":
        raise ConflictError(f"program {program.name!r} is closed to proposals")
    if requested_gpus <= 0 or requested_gpus % program.unit_gpus:
        raise InvalidRequestError(
            f"requested_gpus must be a positive multiple of the program unit ({program.unit_gpus} GPUs), "
            f"got {requested_gpus}"
        )
    existing = session.scalar(
        select(ProposalRow.id).where(
            ProposalRow.program_id == program_id, ProposalRow.project_id == project_id
        )
    )
    if existing is not None:
        raise ConflictError(f"project {project_id} already has proposal {existing} in program {program_id}")
    row = ProposalRow(
        program_id=program_id,
        project_id=project_id,
        submitted_by=submitted_by,
        requested_gpus=requested_gpus,
        justification=justification,
        status="submitted",
        submitted_at=now,
    )
    session.add(row)
    session.flush()
    return row


def get_proposal(session: Session, proposal_id: int) -> ProposalRow:
    return get_row(session, ProposalRow, proposal_id, "proposal")


def list_proposals(
    session: Session, project_ids: set[int] | None = None, program_id: int | None = None
) -> list[ProposalRow]:
    query = select(ProposalRow).order_by(ProposalRow.id)
    if project_ids is not None:
        query = query.where(ProposalRow.project_id.in_(project_ids))
    if program_id is not None:
        query = query.where(ProposalRow.program_id == program_id)
    return list(session.scalars(query))


def reject_proposal(session: Session, proposal_id: int) -> ProposalRow:
    row = get_proposal(session, proposal_id)
    if row.status != "submitted":
        raise ConflictError(f"proposal {proposal_id} is {row.status}, not submitted")
    row.status = "rejected"
    session.flush()
    return row


def score_proposal(
    session: Session, proposal_id: int, reviewer_id: int, score: int, comment: str, now: datetime
) -> ReviewRow:
    """Record a reviewer's score; scoring the same proposal again replaces the earlier score."""
    proposal = get_proposal(session, proposal_id)
    get_user(session, reviewer_id)
    if proposal.status != "submitted":
        raise ConflictError(f"proposal {proposal_id} is {proposal.status}; only submitted ones are scored")
    if not 0 <= score <= 100:
        raise InvalidRequestError(f"score must be within 0..100, got {score}")
    row = session.scalar(
        select(ReviewRow).where(ReviewRow.proposal_id == proposal_id, ReviewRow.reviewer_id == reviewer_id)
    )
    if row is None:
        row = ReviewRow(proposal_id=proposal_id, reviewer_id=reviewer_id, score=score, comment=comment)
        session.add(row)
    else:
        row.score, row.comment = score, comment
    row.created_at = now
    session.flush()
    return row


def list_reviews(session: Session, proposal_id: int) -> list[ReviewRow]:
    get_proposal(session, proposal_id)
    query = select(ReviewRow).where(ReviewRow.proposal_id == proposal_id).order_by(ReviewRow.id)
    return list(session.scalars(query))


def mean_scores(session: Session, program_id: int) -> dict[int, float]:
    """Mean review score of each reviewed proposal of the program; unreviewed ones are absent."""
    query = (
        select(ReviewRow.proposal_id, func.avg(ReviewRow.score))
        .join(ProposalRow, ProposalRow.id == ReviewRow.proposal_id)
        .where(ProposalRow.program_id == program_id)
        .group_by(ReviewRow.proposal_id)
    )
    return {pid: float(avg) for pid, avg in session.execute(query)}
