"""Jobs and their GPU allocations: rows, and the repositories that submit, list and cancel jobs.

The database itself guarantees that no GPU is given to two jobs: an allocation row exists only while
its job holds the GPU (rows are deleted when the job stops), and ``(node_name, gpu_index)`` is unique.
Times are UTC ``datetime``s; the live store converts them to the policy's float seconds.

The API and the scheduler both write job rows, so no write to one may be lost: every ORM flush of a
``JobRow`` is ``UPDATE ... WHERE id = :id AND version = :v`` (``version`` is the mapper's version
counter; a mismatch raises ``StaleDataError`` instead of overwriting), and the scheduler takes each
row it changes with ``claim_job`` first: a conditional UPDATE on the state it expects that bumps the
version and so holds the row (a row lock on PostgreSQL, the write lock on SQLite) until its
transaction ends. A row that no longer is what the caller saw is skipped, not overwritten.

Every check of a submission happens before anything is added to the session, so a rejected request
leaves the database exactly as it was. Flushes, never commits; ``now`` is passed in. Metered segments
are in ``store/usage.py``, why a job waits in ``store/why.py``, job arrays in ``store/arrays.py``; a
submission and a cancel are written to the job's history (``store/job_events.py``) in the same
transaction.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    delete,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.domain.speeds import JOB_CLASSES
from gpucommons.engine.ports import DEFAULT_MAX_GRACE_S
from gpucommons.errors import ConflictError, InvalidRequestError, NotFoundError
from gpucommons.policy.placement.shapes import accepted_pools, even_gang, never_fits_reason
from gpucommons.policy.priority import CLASS_NAMES
from gpucommons.store.base import (
    Base,
    UtcDateTime,
    get_row,
    one_of,
    utcnow,
)
from gpucommons.store.job_events import ended_event, event_of, record_event, record_events

JOB_STATES = ("pending", "running", "finished", "failed", "cancelled", "timeout", "lost")


ACTIVE_STATES = ("pending", "running")


PRIORITY_CLASSES = CLASS_NAMES


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
        CheckConstraint(one_of("state", JOB_STATES), name="state"),
        CheckConstraint(one_of("priority_class", PRIORITY_CLASSES), name="priority_class"),
        CheckConstraint("gpus > 0", name="gpus"),
        CheckConstraint("time_limit_s > 0", name="time_limit"),
        Index("ix_jobs_state_submitted", "state", "submitted_at", "id"),
        Index("uq_jobs_array_task", "array_id", "array_task_id", unique=True),
        Index("ix_jobs_array_state", "array_id", "state"),
        Index("ix_jobs_change_stamp", "change_stamp"),
        Index("ix_jobs_ended_at", "ended_at"),  # reports' waits select the jobs that ended in a period
        # Every scheduler step asks for the running jobs asked to cancel: a handful among thousands.
        Index(
            "ix_jobs_cancel_requested",
            "id",
            sqlite_where=text("state = 'running' AND cancel_requested_at IS NOT NULL"),
            postgresql_where=text("state = 'running' AND cancel_requested_at IS NOT NULL"),
        ),
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
    job_class: Mapped[str] = mapped_column(String(32), default="", server_default="")  # "": default class
    # The model lineage it trains, named at submit, for the training-compute ledger; "": none.
    lineage: Mapped[str] = mapped_column(String(200), default="", server_default="")
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
    # The job array it is a task of (``store/arrays.py``; the array's id is its first task's job id)
    # and its index there; both ``None`` for a plain job.
    array_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    array_task_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Set by the database itself on every insert and on every change of a column the scheduler's
    # snapshot reads (triggers of migration 0014): the engine re-reads only the jobs stamped since its
    # last cycle (``store/job_view.py``). Nothing in the package writes it.
    change_stamp: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Graceful preemption (migration 0018): its grace period between the stop signal and the kill
    # (``None``: its class's default), its declared checkpoint interval, its last reported checkpoint
    # (the snapshot reads it, so it stamps), when its last run was told to stop by a preemption, and
    # the SHA-256 of its current run's secret (``GPUC_JOB_TOKEN``), which reports its checkpoints.
    grace_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    checkpoint_interval_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_checkpoint_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    signalled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    run_token_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - read once, by the mapper


RUN_TOKEN_PREFIX = "gpucr_"  # a run's own secret, never an API token (those start ``gpuc_``)


def new_run_token() -> str:
    """A secret for one run of a job (``GPUC_JOB_TOKEN``): it reports that job's checkpoints and does
    nothing else; the database keeps only its SHA-256, replaced at the job's next start."""
    return RUN_TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_run_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


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


_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


MAX_TIME_LIMIT_S = 30 * 86_400


def _seconds(text: str) -> float | None:
    """Seconds from ``90s``, ``30m``, ``1h``, ``2d``, ``1h30m``, ``1:30:00``, ``30:00`` or ``3600``;
    ``None`` for anything else."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    if re.fullmatch(r"(\d+(\.\d+)?[smhd])+", value):
        return sum(float(n) * _UNITS_S[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", value))
    if re.fullmatch(r"\d+(:[0-5]\d){1,2}", value):
        parts = [int(p) for p in value.split(":")]
        return float(sum(p * 60**i for i, p in enumerate(reversed(parts))))
    return None


def parse_time_limit(text: str) -> float:
    """Seconds from ``90s``, ``30m``, ``1h``, ``2d``, ``1h30m``, ``1:30:00``, ``30:00`` or ``3600``."""
    seconds = _seconds(text)
    if seconds is None:
        raise InvalidRequestError(f"malformed time limit {text!r}; use e.g. 90s, 30m, 1h, 2d or 1:30:00")
    if not 0 < seconds <= MAX_TIME_LIMIT_S:
        raise InvalidRequestError(f"time limit {text!r} must be more than 0 and at most 30 days")
    return seconds


def parse_duration_s(text: str, what: str, max_s: float) -> float:
    """Seconds from a duration written as a time limit is (``90s``, ``2m``, ``1h30m``, ``1:30``),
    from 0 (``0``: none) to ``max_s``; ``InvalidRequestError`` names ``what`` otherwise."""
    seconds = _seconds(text)
    if seconds is None:
        raise InvalidRequestError(f"malformed {what} {text!r}; use e.g. 30s, 2m, 1h or 1:30")
    if seconds > max_s:
        raise InvalidRequestError(f"{what} {text!r} is above the server's cap of {max_s:g} s")
    return seconds


@dataclass(frozen=True)
class JobRequest:
    """What a submission asks for; ``command`` is an argv, or ``script`` a shell script. A ``sovereign``
    job runs only on sovereign sites (on a cluster without one it is accepted and waits, ``residency``)."""

    gpus: int
    command: Sequence[str] = ()
    script: str = ""
    gpus_per_node: int | None = None
    models: Sequence[str] = field(default_factory=tuple)
    time_limit: str = "1h"
    priority_class: str = "normal"
    preemptible: bool = True
    sovereign: bool = False
    name: str = ""
    idempotency_key: str | None = None
    workdir: str = ""
    job_class: str = ""  # its kind of work (``domain.speeds.JOB_CLASSES``); "": the table's default
    lineage: str = ""  # the model lineage it trains, for the training-compute ledger; "": none
    # Graceful preemption (design note 0016): the time it needs between the stop signal and the kill
    # ("": its class's default), at most ``max_grace_s`` (the server's cap), and how often it writes a
    # checkpoint ("": not declared).
    grace_period: str = ""
    checkpoint_interval: str = ""
    max_grace_s: float = DEFAULT_MAX_GRACE_S


def _refuse_nul(request: JobRequest) -> None:
    """No text of a job may hold a NUL byte: PostgreSQL cannot store one, and a process cannot be
    started with one in its argv, so such a job would break every scheduling cycle it entered."""
    texts = [*request.command, request.script, *request.models, request.time_limit, request.name]
    texts += [request.workdir, request.idempotency_key or "", request.job_class, request.lineage]
    texts += [request.grace_period, request.checkpoint_interval]
    if any("\x00" in text for text in texts):
        raise InvalidRequestError("job text must not contain NUL (U+0000)")


def _largest_pools(cluster: Cluster, models: Sequence[str]) -> str:
    """Each accepted model's largest pool, for a refusal to name what the job could have used."""
    largest: dict[str, tuple[int, int, int]] = {}
    for i in accepted_pools(cluster, frozenset(models)):
        p = cluster.pools[i]
        largest[p.model.name] = max(
            largest.get(p.model.name, (0, 0, 0)), (p.gpus, p.node_count, p.gpus_per_node)
        )
    return ", ".join(
        f"the largest {model} pool has {gpus} GPUs ({nodes} nodes x {per_node})"
        for model, (gpus, nodes, per_node) in sorted(largest.items())
    )


def _validate(
    request: JobRequest, cluster: Cluster, even_gangs: bool = False
) -> tuple[list[str], float, list[str]]:
    _refuse_nul(request)
    if request.gpus < 1:
        raise InvalidRequestError(f"gpus must be at least 1, got {request.gpus}")
    if request.gpus_per_node is not None and (
        request.gpus_per_node < 1 or request.gpus % request.gpus_per_node
    ):
        raise InvalidRequestError(f"gpus_per_node {request.gpus_per_node} must divide gpus {request.gpus}")
    if bool(request.command) == bool(request.script):
        raise InvalidRequestError("give exactly one of a command (argv) or a script")
    command = list(request.command) if request.command else ["/bin/sh", "-c", request.script]
    if request.priority_class not in PRIORITY_CLASSES:
        raise InvalidRequestError(f"priority class must be one of {', '.join(PRIORITY_CLASSES)}")
    if request.job_class and request.job_class not in JOB_CLASSES:
        raise InvalidRequestError(f"unknown job class {request.job_class!r}; known: {', '.join(JOB_CLASSES)}")
    known = {p.model.name.lower(): p.model.name for p in cluster.pools}
    models = []
    for m in request.models:
        if m.lower() not in known:
            raise InvalidRequestError(
                f"no pool has model {m!r}; this cluster has {', '.join(sorted(known.values()))}"
            )
        models.append(known[m.lower()])
    time_limit_s = parse_time_limit(request.time_limit)
    probe = Job(0, "", request.gpus, 0.0, 0.0, 0.0, request.gpus_per_node, frozenset(models))
    if even_gangs:  # the shape the even-gangs stage will give it, by the stage's own rule
        probe = even_gang(probe, cluster)
    reason = never_fits_reason(probe, cluster)
    if reason is not None:
        gang = " (this backend runs a job as the same GPUs on every node)" if even_gangs else ""
        raise InvalidRequestError(f"{reason.detail}{gang}: {_largest_pools(cluster, models)}")
    return command, time_limit_s, models


def _grace_s(request: JobRequest) -> float | None:
    if not request.grace_period.strip():
        return None
    return parse_duration_s(request.grace_period, "grace period", request.max_grace_s)


def _checkpoint_interval_s(request: JobRequest) -> float | None:
    if not request.checkpoint_interval.strip():
        return None
    interval_s = parse_duration_s(request.checkpoint_interval, "checkpoint interval", MAX_TIME_LIMIT_S)
    if interval_s <= 0:
        raise InvalidRequestError("a checkpoint interval must be more than 0")
    return interval_s


def job_values(
    cluster: Cluster,
    project_id: int,
    user_id: int,
    request: JobRequest,
    now: datetime,
    *,
    even_gangs: bool = False,
) -> dict[str, Any]:
    """The columns of a new pending job for ``request``, once every check of a submission has passed
    (else ``InvalidRequestError`` names the first that failed); nothing is stored. A job array's
    tasks (``store/arrays.py``) are built from it too, so they are checked exactly as a job is."""
    command, time_limit_s, models = _validate(request, cluster, even_gangs)
    return dict(
        project_id=project_id,
        user_id=user_id,
        name=request.name or command[0].rsplit("/", 1)[-1][:200],
        command=command,
        workdir=request.workdir,
        gpus=request.gpus,
        gpus_per_node=request.gpus_per_node,
        accepted_models=models,
        time_limit_s=time_limit_s,
        priority_class=request.priority_class,
        preemptible=request.preemptible,
        sovereign=request.sovereign,
        job_class=request.job_class,
        lineage=request.lineage.strip(),
        grace_s=_grace_s(request),
        checkpoint_interval_s=_checkpoint_interval_s(request),
        idempotency_key=request.idempotency_key or None,
        state="pending",
        reason_code="new",
        reason="waiting for the next scheduling cycle",
        submitted_at=now,
        backend="",
        backend_ref="",
        restarts=0,
        borrowing=False,
        attained_gpu_s=0.0,
    )


def insert_job(session: Session, values: dict[str, Any]) -> JobRow | None:
    """Store one job of ``job_values`` with one ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (both
    databases); ``None`` when the project already has a job with its idempotency key."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(JobRow)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[JobRow.project_id, JobRow.idempotency_key])
        .returning(JobRow)
    )
    row: JobRow | None = session.scalars(statement).first()
    return row


def job_with_key(session: Session, project_id: int, idempotency_key: str | None) -> JobRow:
    """The job a submission's idempotency key already names (after ``insert_job`` found it taken)."""
    existing = session.scalar(
        select(JobRow).where(JobRow.project_id == project_id, JobRow.idempotency_key == idempotency_key)
    )
    if existing is None:  # nothing else can conflict; a vanished row means a concurrent delete
        raise ConflictError(f"job with idempotency key {idempotency_key!r} could not be stored")
    return existing


def submit_job(
    session: Session,
    cluster: Cluster,
    project_id: int,
    user_id: int,
    request: JobRequest,
    now: datetime,
    *,
    even_gangs: bool = False,
) -> tuple[JobRow, bool]:
    """A new pending job, or the job already submitted with the same idempotency key (``False``).
    ``even_gangs``: the backend needs the same GPUs on every node (Slurm), so a job is refused when no
    such shape of it could ever run.

    One ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` on both databases: a first submission costs a
    single statement, and a retry, even one racing the first, finds the stored job instead of failing.
    """
    values = job_values(cluster, project_id, user_id, request, now, even_gangs=even_gangs)
    row = insert_job(session, values)
    if row is not None:
        record_event(session, event_of(row, "submitted", now))
        return row, True
    return job_with_key(session, project_id, request.idempotency_key), False


def get_job(session: Session, job_id: int) -> JobRow:
    return get_row(session, JobRow, job_id, "job")


def list_jobs(
    session: Session,
    project_ids: set[int] | None,
    states: Sequence[str] = (),
    limit: int = 200,
    *,
    array_id: int | None = None,
    tasks: bool = True,
) -> list[JobRow]:
    """Jobs in line order; ``array_id``: only that job array's tasks; ``tasks=False``: no array's."""
    query = select(JobRow).order_by(JobRow.submitted_at, JobRow.id)
    if project_ids is not None:
        query = query.where(JobRow.project_id.in_(project_ids))
    if states:
        query = query.where(JobRow.state.in_(states))
    if array_id is not None:
        query = query.where(JobRow.array_id == array_id)
    if not tasks:
        query = query.where(JobRow.array_id.is_(None))
    return list(session.scalars(query.limit(limit)))


def latest_jobs(session: Session, project_ids: set[int] | None, limit: int) -> list[JobRow]:
    """The ``limit`` jobs submitted last, newest first (the dashboard's job list), of ``project_ids``
    (``None``: every project)."""
    query = select(JobRow).order_by(JobRow.submitted_at.desc(), JobRow.id.desc())
    if project_ids is not None:
        query = query.where(JobRow.project_id.in_(project_ids))
    return list(session.scalars(query.limit(limit)))


CANCEL_TRIES = 3  # a job changes state a few times at most while a cancel is being written


def request_cancel(session: Session, row: JobRow, now: datetime) -> JobRow:
    """Ask a job to stop, never overwriting what the scheduler wrote meanwhile.

    A pending job is cancelled at once and a running one is asked to stop (the scheduler kills it),
    each with one conditional UPDATE on the state it expects (``claim``-style: the version is bumped,
    so a scheduler decision taken on the old row cannot be committed over it). The request is also
    kept in ``cancel_requested_at``, which nothing clears: a job preempted or requeued before the
    scheduler forwarded the cancel ends cancelled instead of starting again. Cancelling a cancelled
    job changes nothing; an ended one is a conflict. Returns the row as stored now."""
    requested = func.coalesce(JobRow.cancel_requested_at, literal(now, UtcDateTime()))
    asked_while = ""  # the state this call asked to stop, if it did
    for _ in range(CANCEL_TRIES):
        cancelled = session.execute(
            update(JobRow)
            .where(JobRow.id == row.id, JobRow.state == "pending")
            .values(
                state="cancelled",
                ended_at=now,
                reason_code="cancelled",
                reason="cancelled while pending",
                cancel_requested_at=requested,
                version=JobRow.version + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(cancelled, "rowcount", 0) == 1:
            asked_while = "pending"
            break
        asked = session.execute(
            update(JobRow)
            .where(JobRow.id == row.id, JobRow.state == "running", JobRow.cancel_requested_at.is_(None))
            .values(cancel_requested_at=now, version=JobRow.version + 1)
            .execution_options(synchronize_session=False)
        )
        if getattr(asked, "rowcount", 0) == 1:
            asked_while = "running"
            break
        current = session.get(JobRow, row.id, populate_existing=True)
        if current is None:
            raise NotFoundError(f"job {row.id} does not exist")
        if current.state == "cancelled" or (current.state == "running" and current.cancel_requested_at):
            break
        if current.state != "pending":
            raise ConflictError(f"job {row.id} already ended ({current.state})")
    else:
        raise ConflictError(f"job {row.id} kept changing while it was being cancelled; try again")
    stored = session.get(JobRow, row.id, populate_existing=True)
    if stored is None:
        raise NotFoundError(f"job {row.id} does not exist")
    if asked_while:  # the job's history: the request, and the end of a job that was waiting
        events = [event_of(stored, "cancel_requested", now, f"while {asked_while}")]
        if asked_while == "pending":
            events.append(ended_event(stored, now))
        record_events(session, events)
    return stored


def record_checkpoint(session: Session, job_id: int, at: datetime) -> bool:
    """Record that job ``job_id`` wrote a checkpoint at ``at``: one conditional ``UPDATE`` that only
    moves ``last_checkpoint_at`` forward, so reports from the API and from the checkpoint file, in any
    order or twice, keep the latest. It bumps no version: it commutes with every other write (a start
    or preemption decided meanwhile still goes through), and the change stamp tells the scheduler.
    Whether it changed anything."""
    moved = session.execute(
        update(JobRow)
        .where(
            JobRow.id == job_id,
            (JobRow.last_checkpoint_at.is_(None)) | (JobRow.last_checkpoint_at < at),
        )
        .values(last_checkpoint_at=at)
        .execution_options(synchronize_session=False)
    )
    return getattr(moved, "rowcount", 0) == 1


def release(session: Session, job_id: int) -> None:
    """Drop a job's allocations without metering (a job that never really started)."""
    session.execute(delete(AllocationRow).where(AllocationRow.job_id == job_id))
