"""Applying one backend event to the database: the job's new state, its metered segment, its GPUs.

Events are matched to the job's current segment by ``backend_ref``: an event about an older segment (a
preempted run that is only now dying) or about a job that is no longer running changes nothing. Lost
jobs are requeued by rule (``max_lost_requeues``), then marked lost. A ``started`` event moves the
segment's start to when the backend really started the job (Slurm's StartTime, a second or more after
the decision), so the GPU-hours charged are the ones the backend reports. Flushes, never commits.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from gpucommons.domain.cluster import Cluster
from gpucommons.engine.ports import BackendEvent
from gpucommons.store.charging import end_segment
from gpucommons.store.jobs import JobRow
from gpucommons.store.live import PENDING_REF_PREFIX, to_dt

ENDS = frozenset({"finished", "failed", "cancelled", "timeout"})


def _same_segment(row: JobRow, event: BackendEvent) -> bool:
    if row.state != "running":
        return False
    if not event.backend_ref or not row.backend_ref or row.backend_ref.startswith(PENDING_REF_PREFIX):
        return True
    return event.backend_ref == row.backend_ref


def _describe(event: BackendEvent) -> str:
    if event.detail:
        return event.detail
    if event.kind == "timeout":
        return "stopped at its time limit"
    if event.kind == "cancelled":
        return "cancelled"
    return f"exit code {event.exit_code}" if event.exit_code is not None else event.kind


def apply_event(session: Session, cluster: Cluster, event: BackendEvent, max_lost_requeues: int) -> bool:
    """Apply ``event``; returns whether it changed the job."""
    row = session.get(JobRow, event.job_id)
    if row is None or not _same_segment(row, event):
        return False
    if event.kind == "started":
        row.backend_ref = event.backend_ref or row.backend_ref
        started = to_dt(event.at_s)
        if row.started_at is not None and started > row.started_at:
            row.started_at = started
        return True
    at = to_dt(event.at_s)
    if row.started_at is not None and at < row.started_at:
        at = row.started_at
    if event.kind in ENDS:
        end_segment(session, cluster, row, at)
        row.state, row.exit_code, row.ended_at = event.kind, event.exit_code, at
        row.reason_code, row.reason = event.kind, _describe(event)
    elif event.kind in ("lost", "requeued"):
        end_segment(session, cluster, row, at)
        row.backend_ref, row.started_at = "", None
        if event.kind == "lost" and row.restarts >= max_lost_requeues:
            row.state, row.ended_at = "lost", at
            row.reason_code, row.reason = "lost", f"{_describe(event)}; requeued {row.restarts} times already"
        else:
            row.state, row.restarts = "pending", row.restarts + 1
            row.reason_code, row.reason = event.kind, f"{_describe(event)}; back in the queue"
    else:
        return False
    session.flush()
    return True
