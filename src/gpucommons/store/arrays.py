"""Job arrays (design note 0011): their rows, and the repositories that submit, read, count and cancel
them.

An array is one ``job_arrays`` row and its tasks, each an ordinary ``JobRow`` naming its array and
index (``array_id``, ``array_task_id``): the scheduler, the backends and the ledger see jobs only. The
array's id is the job id of its first task, as in Slurm. So the first task is stored on its own, by the
single job's ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` and with the submission's idempotency key
(a retry finds it, and so the array), and the other tasks follow in one executemany: ten thousand
tasks cost a handful of statements, not ten thousand flushes; their ``submitted`` events are one
``INSERT ... SELECT`` (``store/job_events.py``). Every check runs before anything is added; flushes,
never commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    Table,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from gpucommons.domain.arrays import ArraySpec, ArrayTask, task_ref
from gpucommons.domain.cluster import Cluster
from gpucommons.errors import ConflictError, NotFoundError
from gpucommons.store.base import Base, UtcDateTime, get_row
from gpucommons.store.job_events import JobEvent, record_events, record_for_each
from gpucommons.store.jobs import (
    ACTIVE_STATES,
    JobRequest,
    JobRow,
    insert_job,
    job_values,
    job_with_key,
)

_JOBS: Table = JobRow.__table__  # type: ignore[assignment]


class ArrayRow(Base):
    """One job array: ``id`` is its first task's job id; ``spec`` as submitted (``0-999%50``);
    ``task_count`` tasks with indexes from ``task_min`` to ``task_max``; at most ``max_running`` of
    them running at once (``None``: no limit)."""

    __tablename__ = "job_arrays"
    __table_args__ = (
        CheckConstraint("task_count > 0", name="task_count"),
        CheckConstraint("max_running IS NULL OR max_running > 0", name="max_running"),
    )

    id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), primary_key=True, autoincrement=False)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    spec: Mapped[str] = mapped_column(String(200))
    task_count: Mapped[int] = mapped_column(Integer)
    task_min: Mapped[int] = mapped_column(Integer)
    task_max: Mapped[int] = mapped_column(Integer)
    max_running: Mapped[int | None] = mapped_column(Integer, nullable=True)
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime)

    def task(self, task_id: int) -> ArrayTask:
        return ArrayTask(self.id, task_id, self.task_count, self.task_min, self.task_max)


def submit_array(
    session: Session,
    cluster: Cluster,
    project_id: int,
    user_id: int,
    request: JobRequest,
    spec: ArraySpec,
    now: datetime,
    *,
    even_gangs: bool = False,
) -> tuple[ArrayRow, bool]:
    """A new array of ``spec.task_count`` pending tasks running ``request``, or the array submitted
    before with the same idempotency key (``False``). Each task is checked as a single job is
    (``job_values``); a key that names a job which is no array's is a conflict."""
    values = job_values(cluster, project_id, user_id, request, now, even_gangs=even_gangs)
    first = insert_job(session, {**values, "array_task_id": spec.task_ids[0]})
    if first is None:
        existing = job_with_key(session, project_id, request.idempotency_key)
        if existing.array_id != existing.id:
            raise ConflictError(
                f"idempotency key {request.idempotency_key!r} names job {existing.id}, which is no array"
            )
        return get_array(session, existing.id), False
    array = ArrayRow(
        id=first.id,
        project_id=project_id,
        spec=spec.text,
        task_count=spec.task_count,
        task_min=spec.task_ids[0],
        task_max=spec.task_ids[-1],
        max_running=spec.max_running,
        submitted_at=now,
    )
    session.add(array)
    first.array_id = first.id
    session.flush()
    rest = {**values, "idempotency_key": None, "array_id": first.id}
    if spec.task_count > 1:
        session.execute(insert(_JOBS), [{**rest, "array_task_id": t} for t in spec.task_ids[1:]])
    tasks = select(JobRow.id).where(JobRow.array_id == first.id)
    record_for_each(session, tasks, "submitted", now, f"task of array {first.id}")
    return array, True


def get_array(session: Session, array_id: int) -> ArrayRow:
    return get_row(session, ArrayRow, array_id, "array")


def array_task(session: Session, array: ArrayRow, task_id: int) -> JobRow:
    """Task ``task_id`` of ``array`` (``NotFoundError`` if the array has no such index)."""
    row = session.scalar(select(JobRow).where(JobRow.array_id == array.id, JobRow.array_task_id == task_id))
    if row is None:
        raise NotFoundError(f"task {task_ref(array.id, task_id)} not found (array {array.id}: {array.spec})")
    return row


def array_task_of(session: Session, row: JobRow) -> ArrayTask | None:
    """Which task of which array ``row`` is (``None`` for a plain job): what its launch's environment
    says of its array."""
    if row.array_id is None or row.array_task_id is None:
        return None
    array = session.get(ArrayRow, row.array_id)
    return array.task(row.array_task_id) if array is not None else None


def list_arrays(
    session: Session, project_ids: set[int] | None, active_only: bool = True, limit: int = 200
) -> list[ArrayRow]:
    """Arrays in submission order, of ``project_ids`` (``None``: all); ``active_only``: only those
    with a pending or running task."""
    query = select(ArrayRow).order_by(ArrayRow.submitted_at, ArrayRow.id)
    if project_ids is not None:
        query = query.where(ArrayRow.project_id.in_(project_ids))
    if active_only:
        active = select(JobRow.array_id).where(JobRow.state.in_(ACTIVE_STATES), JobRow.array_id.is_not(None))
        query = query.where(ArrayRow.id.in_(active))
    return list(session.scalars(query.limit(limit)))


def task_states(session: Session, array_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """How many tasks of each array are in each state (one ``GROUP BY``)."""
    ids = list(array_ids)
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    if not ids:
        return counts
    query = (
        select(JobRow.array_id, JobRow.state, func.count())
        .where(JobRow.array_id.in_(ids))
        .group_by(JobRow.array_id, JobRow.state)
    )
    for array_id, state, count in session.execute(query):
        if array_id is not None:  # as the filter says; the column's type allows NULL
            counts[array_id][state] = int(count)
    return counts


def next_pending(session: Session, array_id: int) -> JobRow | None:
    """The array's first pending task in line (whose reason says why the array waits)."""
    query = (
        select(JobRow)
        .where(JobRow.array_id == array_id, JobRow.state == "pending")
        .order_by(JobRow.submitted_at, JobRow.id)
        .limit(1)
    )
    return session.scalar(query)


def array_limits(session: Session, array_ids: Sequence[int]) -> dict[int, int]:
    """Array id -> concurrency limit, of those of ``array_ids`` that have one (for the snapshot)."""
    if not array_ids:
        return {}
    query = select(ArrayRow.id, ArrayRow.max_running).where(
        ArrayRow.id.in_(array_ids), ArrayRow.max_running.is_not(None)
    )
    return {i: m for i, m in session.execute(query) if m is not None}


def cancel_array(session: Session, array: ArrayRow, now: datetime) -> None:
    """Cancel every task of ``array`` not yet ended, in two statements (and one ``INSERT`` of the tasks'
    events): pending tasks are cancelled at once and running ones asked to stop
    (``cancel_requested_at``, which nothing clears, as ``request_cancel`` does for one job). Both
    bump the version, so a start the scheduler decided on an older row is not recorded. Tasks that
    ended keep their state; cancelling again changes nothing.

    A task the scheduler is starting meanwhile is either started first (the pending update waits for
    it, then finds it running, and the running update asks it to stop) or found cancelled by the
    scheduler's claim: none escapes."""
    tasks = update(JobRow).where(JobRow.array_id == array.id).execution_options(synchronize_session=False)
    why = f"cancelled while pending (array {array.id} was cancelled)"
    cancelled = session.execute(
        tasks.where(JobRow.state == "pending")
        .values(
            state="cancelled",
            ended_at=now,
            reason_code="cancelled",
            reason=why,
            cancel_requested_at=func.coalesce(JobRow.cancel_requested_at, literal(now, UtcDateTime())),
            version=JobRow.version + 1,
        )
        .returning(JobRow.id, JobRow.restarts)
    )
    events = [
        event
        for job_id, restarts in cancelled
        for event in (
            JobEvent(job_id, "cancel_requested", now, restarts + 1, f"while pending (array {array.id})"),
            JobEvent(job_id, "ended", now, restarts + 1, f"cancelled: {why}"),
        )
    ]
    asked = session.execute(
        tasks.where(JobRow.state == "running", JobRow.cancel_requested_at.is_(None))
        .values(cancel_requested_at=now, version=JobRow.version + 1)
        .returning(JobRow.id, JobRow.restarts)
    )
    events += [
        JobEvent(job_id, "cancel_requested", now, restarts + 1, f"while running (array {array.id})")
        for job_id, restarts in asked
    ]
    record_events(session, events)  # the tasks' histories
