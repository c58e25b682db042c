"""ORM rows of execution: jobs, their GPU allocations, metered usage segments and the scheduler lease.

The database itself guarantees that no GPU is given to two jobs: an allocation row exists only while
its job holds the GPU (rows are deleted when the job stops), and ``(node_name, gpu_index)`` is unique.
Times are UTC ``datetime``s; the live store converts them to the policy's float seconds.

The API and the scheduler both write job rows, so no write to one may be lost: every ORM flush of a
``JobRow`` is ``UPDATE ... WHERE id = :id AND version = :v`` (``version`` is the mapper's version
counter; a mismatch raises ``StaleDataError`` instead of overwriting), and the scheduler takes each
row it changes with ``claim_job`` first: a conditional UPDATE on the state it expects that bumps the
version and so holds the row (a row lock on PostgreSQL, the write lock on SQLite) until its
transaction ends. A row that no longer is what the caller saw is skipped, not overwritten.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ColumnElement,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, validates

from gpucommons.policy.priority import CLASS_NAMES
from gpucommons.store.base import Base, UtcDateTime, utcnow
from gpucommons.store.models import checked_won

JOB_STATES = ("pending", "running", "finished", "failed", "cancelled", "timeout", "lost")
ACTIVE_STATES = ("pending", "running")
PRIORITY_CLASSES = CLASS_NAMES


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class JobRow(Base):
    """A submitted job and its current segment. ``reason_code``/``reason`` say why it waits (from
    admission or the last scheduling cycle); ``sovereign`` keeps it on sovereign sites (every job of a
    sovereign project is kept there too); ``backend_ref`` names its process or Slurm job while it
    runs (``pending:<launch id>`` between the decision to start it and the launch).

    ``cancel_requested_at`` is a durable fact: once set, nothing clears it, so a job asked to stop ends
    cancelled whatever happens to it meanwhile (a preemption, a backend requeue, a failed launch).
    ``launch_attempts`` counts launches the backend refused or never carried out in a row;
    ``retry_at`` holds a job back until then after one (exponential backoff). ``version`` is bumped by
    every write (see the module docstring)."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("project_id", "idempotency_key", name="uq_jobs_project_idempotency_key"),
        CheckConstraint(_in("state", JOB_STATES), name="state"),
        CheckConstraint(_in("priority_class", PRIORITY_CLASSES), name="priority_class"),
        CheckConstraint("gpus > 0", name="gpus"),
        CheckConstraint("time_limit_s > 0", name="time_limit"),
        Index("ix_jobs_state_submitted", "state", "submitted_at", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(200), default="")
    command: Mapped[list[Any]] = mapped_column(JSON)
    workdir: Mapped[str] = mapped_column(String(1000), default="")
    gpus: Mapped[int] = mapped_column(Integer)
    gpus_per_node: Mapped[int | None] = mapped_column(Integer, nullable=True)
    accepted_models: Mapped[list[Any]] = mapped_column(JSON, default=list)
    time_limit_s: Mapped[float] = mapped_column(Float)
    priority_class: Mapped[str] = mapped_column(String(16), default="normal")
    preemptible: Mapped[bool] = mapped_column(Boolean, default=True)
    sovereign: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    reason_code: Mapped[str] = mapped_column(String(32), default="")
    reason: Mapped[str] = mapped_column(String(500), default="")
    estimated_start_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    backend: Mapped[str] = mapped_column(String(32), default="")
    backend_ref: Mapped[str] = mapped_column(String(200), default="")
    restarts: Mapped[int] = mapped_column(Integer, default=0)
    borrowing: Mapped[bool] = mapped_column(Boolean, default=False)
    attained_gpu_s: Mapped[float] = mapped_column(Float, default=0.0)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    award_id: Mapped[int | None] = mapped_column(ForeignKey("awards.id"), nullable=True, index=True)
    launch_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    retry_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - read once, by the mapper


def claim_job(session: Session, job_id: int, *expected: ColumnElement[bool]) -> JobRow | None:
    """Take job ``job_id`` for this transaction if it still matches ``expected`` (e.g. its state, the
    version a snapshot read, its backend reference): one ``UPDATE ... SET version = version + 1`` whose
    row count says whether it matched. Returns the row as stored now (the session's copy refreshed), or
    ``None`` when it no longer matches; nothing is changed then. Until the transaction ends no other
    writer can change the row, so what the caller writes next cannot be lost or overwrite another's."""
    claimed = session.execute(
        update(JobRow)
        .where(JobRow.id == job_id, *expected)
        .values(version=JobRow.version + 1)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        return None
    row: JobRow | None = session.get(JobRow, job_id, populate_existing=True)
    return row


class AllocationRow(Base):
    """One GPU held by one running job. Deleted when the job stops, so the unique constraint on
    ``(node_name, gpu_index)`` forbids giving a GPU to two running jobs."""

    __tablename__ = "allocations"
    __table_args__ = (UniqueConstraint("node_name", "gpu_index", name="uq_allocations_node_gpu"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    node_index: Mapped[int] = mapped_column(Integer)
    node_name: Mapped[str] = mapped_column(String(200))
    gpu_index: Mapped[int] = mapped_column(Integer)


class UsageRow(Base):
    """One metered run segment of a job, charged to an award (see ``gpucommons.metering``); its
    ``cost_krw`` is whole won."""

    __tablename__ = "usage"
    __table_args__ = (Index("ix_usage_job_backend_ref", "job_id", "backend_ref"),)

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

    @validates("cost_krw")
    def _whole_won(self, key: str, value: int | float) -> int:
        return checked_won(key, value)


class SchedulerLeaseRow(Base):
    """A single row (``id = 1``): which scheduler may act, until when (by the database's clock), and
    the ``epoch`` of its holding: a fencing token bumped at every takeover (``store/lease.py``)."""

    __tablename__ = "scheduler_lease"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
