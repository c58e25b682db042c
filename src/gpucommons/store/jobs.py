"""ORM rows of execution: jobs, their GPU allocations, metered usage segments and the scheduler lease.

The database itself guarantees that no GPU is given to two jobs: an allocation row exists only while
its job holds the GPU (rows are deleted when the job stops), and ``(node_name, gpu_index)`` is unique.
Times are UTC ``datetime``s; the live store converts them to the policy's float seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from gpucommons.store.base import Base, UtcDateTime, utcnow

JOB_STATES = ("pending", "running", "finished", "failed", "cancelled", "timeout", "lost")
ACTIVE_STATES = ("pending", "running")
PRIORITY_CLASSES = ("low", "normal", "high")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class JobRow(Base):
    """A submitted job and its current segment. ``reason_code``/``reason`` say why it waits (from
    admission or the last scheduling cycle); ``sovereign`` keeps it on sovereign sites (every job of a
    sovereign project is kept there too); ``backend_ref`` names its process or Slurm job while it
    runs (``pending:<launch id>`` between the decision to start it and the launch)."""

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
    """One metered run segment of a job, charged to an award (see ``gpucommons.metering``)."""

    __tablename__ = "usage"

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
    cost_krw: Mapped[float] = mapped_column(Float)
    co2_kg: Mapped[float] = mapped_column(Float)
    flops: Mapped[float] = mapped_column(Float)


class SchedulerLeaseRow(Base):
    """A single row (``id = 1``): which scheduler may act, until when. Only one acts at a time."""

    __tablename__ = "scheduler_lease"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
