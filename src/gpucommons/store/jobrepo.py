"""Job repositories: validate and submit, list, cancel, explain (``why``) and sum usage.

Every check happens before anything is added to the session, so a rejected request leaves the database
exactly as it was. Flushes, never commits; ``now`` is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.errors import ConflictError, InvalidRequestError
from gpucommons.policy.placement.shapes import never_fits_reason
from gpucommons.store.jobs import PRIORITY_CLASSES, JobRow
from gpucommons.store.lookup import get_row

_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
MAX_TIME_LIMIT_S = 30 * 86_400


def parse_time_limit(text: str) -> float:
    """Seconds from ``90s``, ``30m``, ``1h``, ``2d``, ``1h30m``, ``1:30:00``, ``30:00`` or ``3600``."""
    value = text.strip().lower()
    seconds: float | None = None
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value)
    elif re.fullmatch(r"(\d+(\.\d+)?[smhd])+", value):
        seconds = sum(float(n) * _UNITS_S[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", value))
    elif re.fullmatch(r"\d+(:[0-5]\d){1,2}", value):
        parts = [int(p) for p in value.split(":")]
        seconds = float(sum(p * 60**i for i, p in enumerate(reversed(parts))))
    if seconds is None:
        raise InvalidRequestError(f"malformed time limit {text!r}; use e.g. 90s, 30m, 1h, 2d or 1:30:00")
    if not 0 < seconds <= MAX_TIME_LIMIT_S:
        raise InvalidRequestError(f"time limit {text!r} must be more than 0 and at most 30 days")
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


def _validate(request: JobRequest, cluster: Cluster) -> tuple[list[str], float, list[str]]:
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
    reason = never_fits_reason(probe, cluster)
    if reason is not None:
        biggest = max((p.gpus for p in cluster.pools), default=0)
        raise InvalidRequestError(f"{reason.detail} (the largest pool has {biggest} GPUs)")
    return command, time_limit_s, models


def submit_job(
    session: Session, cluster: Cluster, project_id: int, user_id: int, request: JobRequest, now: datetime
) -> tuple[JobRow, bool]:
    """A new pending job, or the job already submitted with the same idempotency key (``False``).

    One ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` on both databases: a first submission costs a
    single statement, and a retry, even one racing the first, finds the stored job instead of failing.
    """
    command, time_limit_s, models = _validate(request, cluster)
    values = dict(
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
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(JobRow)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[JobRow.project_id, JobRow.idempotency_key])
        .returning(JobRow)
    )
    row = session.scalars(statement).first()
    if row is not None:
        return row, True
    existing = session.scalar(
        select(JobRow).where(
            JobRow.project_id == project_id, JobRow.idempotency_key == request.idempotency_key
        )
    )
    if existing is None:  # nothing else can conflict; a vanished row means a concurrent delete
        raise ConflictError(f"job with idempotency key {request.idempotency_key!r} could not be stored")
    return existing, False


def get_job(session: Session, job_id: int) -> JobRow:
    return get_row(session, JobRow, job_id, "job")


def list_jobs(
    session: Session, project_ids: set[int] | None, states: Sequence[str] = (), limit: int = 200
) -> list[JobRow]:
    query = select(JobRow).order_by(JobRow.submitted_at, JobRow.id)
    if project_ids is not None:
        query = query.where(JobRow.project_id.in_(project_ids))
    if states:
        query = query.where(JobRow.state.in_(states))
    return list(session.scalars(query.limit(limit)))


def request_cancel(session: Session, row: JobRow, now: datetime) -> JobRow:
    """A pending job is cancelled at once; a running one is asked to stop (the scheduler kills it)."""
    if row.state == "pending":
        row.state, row.ended_at, row.reason_code, row.reason = (
            "cancelled",
            now,
            "cancelled",
            "cancelled while pending",
        )
    elif row.state == "running":
        row.cancel_requested_at = row.cancel_requested_at or now
    elif row.state != "cancelled":
        raise ConflictError(f"job {row.id} already ended ({row.state})")
    session.flush()
    return row


def queue_position(session: Session, row: JobRow) -> int:
    """1-based place among pending jobs in submission order."""
    ahead = session.scalar(
        select(func.count())
        .select_from(JobRow)
        .where(
            JobRow.state == "pending",
            or_(
                JobRow.submitted_at < row.submitted_at,
                and_(JobRow.submitted_at == row.submitted_at, JobRow.id < row.id),
            ),
        )
    )
    return int(ahead or 0) + 1
