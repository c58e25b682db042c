"""A job's history (design note 0017): one ``job_events`` row per thing that happened to it, and the
small repositories that record and read them.

Events are written where the change they tell of is written, in the same transaction, so a history
never holds an event whose change was rolled back, nor misses one that committed. They are facts:
nothing updates one. The backend's reference of a run is on the event that closes it (a preemption,
a requeue, its end): a start is recorded before the launch that names it.
``run`` is the job's segment (``restarts + 1`` at the time), so a history reads run by run. A start
keeps the ``node:gpu`` names it was given: the allocation rows are deleted when a job stops (that is
what keeps a GPU from two jobs), the start's event is what says afterwards where it ran.

Every job that reaches an ended state has one ``ended`` event, whose detail begins with that state
(``finished: exit code 0``); what led there (a preemption, a lost run, a failed launch) is an event of
its own before it. Recording costs one ``INSERT`` per change, one for all the starts of a cycle, and
one ``INSERT ... SELECT`` for all the tasks of an array. Flushes, never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Table,
    insert,
    literal,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from gpucommons.store.base import Base, UtcDateTime, one_of

if TYPE_CHECKING:  # store/jobs.py records its own events through this module
    from gpucommons.store.jobs import JobRow

EVENT_KINDS = (
    "submitted",
    "started",
    "preempted",
    "requeued",
    "lost",
    "launch_failed",
    "cancel_requested",
    "ended",
)
DETAIL_CHARS = 500


class JobEventRow(Base):
    """One event of one job: ``kind`` at ``at`` in its run ``run``; ``gpus`` (``node:gpu``) for a
    start; ``by_job_id`` the job a preemption made room for (``None``: an eviction); ``detail`` a
    short why (a state and exit code, a reason); ``backend_ref`` the backend's name of the run,
    where known."""

    __tablename__ = "job_events"
    __table_args__ = (
        CheckConstraint(one_of("kind", EVENT_KINDS), name="kind"),
        CheckConstraint("run > 0", name="run"),
        Index("ix_job_events_job_at", "job_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    run: Mapped[int] = mapped_column(Integer)
    gpus: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # No foreign key: a history records what the scheduler said, and no check of it may refuse a cycle.
    by_job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(String(DETAIL_CHARS), default="")
    backend_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)


_EVENTS: Table = JobEventRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class JobEvent:
    """An event to record (see ``JobEventRow`` for the fields)."""

    job_id: int
    kind: str
    at: datetime
    run: int
    detail: str = ""
    gpus: tuple[str, ...] | None = None
    by_job_id: int | None = None
    backend_ref: str | None = None

    def values(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "at": self.at,
            "run": self.run,
            "detail": self.detail[:DETAIL_CHARS],
            "gpus": list(self.gpus) if self.gpus is not None else None,
            "by_job_id": self.by_job_id,
            "backend_ref": self.backend_ref or None,
        }


def run_of(row: JobRow) -> int:
    """The run a job is in (or last was in): its segment number."""
    return row.restarts + 1


def event_of(row: JobRow, kind: str, at: datetime, detail: str = "", **fields: Any) -> JobEvent:
    """An event of ``row``'s current run."""
    return JobEvent(row.id, kind, at, run_of(row), detail, **fields)


def ended_event(row: JobRow, at: datetime, backend_ref: str | None = None) -> JobEvent:
    """The ``ended`` event of a job that has just reached its ended state (``row.state``)."""
    detail = f"{row.state}: {row.reason}" if row.reason else row.state
    return event_of(row, "ended", at, detail, backend_ref=backend_ref)


def record_events(session: Session, events: Sequence[JobEvent]) -> None:
    """Record ``events`` in one ``INSERT`` (an executemany for several)."""
    if not events:
        return
    rows = [e.values() for e in events]
    session.execute(insert(_EVENTS), rows if len(rows) > 1 else rows[0])


def record_event(session: Session, event: JobEvent) -> None:
    record_events(session, (event,))


def record_for_each(
    session: Session, job_ids: Select[int], kind: str, at: datetime, detail: str = ""
) -> None:
    """The same event, in each job's first run, for every job ``job_ids`` selects (the tasks of a
    new array), in one ``INSERT ... SELECT``."""
    rows = job_ids.add_columns(
        literal(kind), literal(at, UtcDateTime()), literal(1), literal(detail[:DETAIL_CHARS])
    )
    session.execute(insert(_EVENTS).from_select(["job_id", "kind", "at", "run", "detail"], rows))


def list_events(session: Session, job_id: int) -> list[JobEventRow]:
    """A job's events in the order they were recorded: the order they happened, as every writer holds
    the job's row while it records one (``claim_job``). Not by ``at``: a backend's clock (Slurm's
    times) may disagree with the server's by a second, and a history must not put an end before its
    start."""
    query = select(JobEventRow).where(JobEventRow.job_id == job_id).order_by(JobEventRow.id)
    return list(session.scalars(query))


def last_gpus(session: Session, job_id: int) -> list[str]:
    """The ``node:gpu`` names of the job's last start (empty: it never started)."""
    query = (
        select(JobEventRow.gpus)
        .where(JobEventRow.job_id == job_id, JobEventRow.kind == "started")
        .order_by(JobEventRow.id.desc())
        .limit(1)
    )
    gpus = session.scalar(query)
    return [str(g) for g in gpus] if gpus else []
