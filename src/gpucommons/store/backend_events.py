"""Applying one backend event to the job rows: the job's new state, its metered segment, its GPUs.

Events are matched to the job's current segment by ``backend_ref``: an event about an older segment (a
preempted run that is only now dying) or about a job that is no longer running changes nothing. The
job is taken with ``claim_job`` on that match before anything is written, so an API write in between
(a cancel request) is never overwritten. Lost jobs are requeued by rule (``max_lost_requeues``), then
marked lost. A job asked to cancel that is lost or requeued ends ``cancelled``: the request is a fact
that outlives the segment. A ``started`` event moves the segment's start to when the backend really
started the job (Slurm's StartTime, a second or more after the decision), so the GPU-hours charged are
the ones the backend reports.

A ``lost`` event about a launch that never happened (the job's reference is still ``pending:``, the
backend found no such launch) is a failed launch, not a lost run: ``launch_failed`` puts the job back
in the queue after a backoff, or fails it once it has failed ``LaunchRetry.max_attempts`` times.
Each change is an event of the job's history too (``store/job_events.py``): what happened to the run
(``requeued``, ``lost``, ``launch_failed``), then ``ended`` if the job is over, with the backend's
reference of the run it closes. Flushes, never commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.orm import Session

from gpucommons.domain.cluster import Cluster
from gpucommons.engine.ports import PENDING_REF_PREFIX, BackendEvent, LaunchRetry
from gpucommons.store.base import to_dt
from gpucommons.store.job_events import JobEvent, ended_event, event_of, record_events
from gpucommons.store.jobs import JobRow, claim_job, record_checkpoint, release
from gpucommons.store.usage import UsageRow, end_segment, extend_segment

ENDS = frozenset({"finished", "failed", "cancelled", "timeout"})
LAUNCH_RETRY_CODE = "launch-retry"
LAUNCH_FAILED_CODE = "launch-failed"


def _same_segment(event: BackendEvent) -> ColumnElement[bool]:
    """SQL: the job runs the segment ``event`` is about (or a launch not yet resolved)."""
    if not event.backend_ref:
        return true()
    return or_(
        JobRow.backend_ref == "",
        JobRow.backend_ref.startswith(PENDING_REF_PREFIX),
        JobRow.backend_ref == event.backend_ref,
    )


def _describe(event: BackendEvent) -> str:
    if event.detail:
        return event.detail
    if event.kind == "timeout":
        return "stopped at its time limit"
    if event.kind == "cancelled":
        return "cancelled"
    return f"exit code {event.exit_code}" if event.exit_code is not None else event.kind


def _never_launched(row: JobRow, event: BackendEvent) -> bool:
    return (
        event.kind == "lost"
        and row.backend_ref.startswith(PENDING_REF_PREFIX)
        and (not event.backend_ref or event.backend_ref.startswith(PENDING_REF_PREFIX))
    )


def launch_failed(session: Session, row: JobRow, at: datetime, error: str, retry: LaunchRetry) -> None:
    """A launch of ``row`` (claimed by the caller) did not happen: free its GPUs without charging (it
    never ran) and put it back in the queue until the backoff has passed, or fail it for good after
    ``retry.max_attempts`` failures in a row; a job asked to cancel is cancelled instead."""
    release(session, row.id)
    events = [event_of(row, "launch_failed", at, error)]
    attempts = row.launch_attempts + 1
    row.launch_attempts = attempts
    row.backend_ref, row.started_at = "", None
    if row.cancel_requested_at is not None:
        row.state, row.ended_at = "cancelled", at
        row.reason_code, row.reason = "cancelled", "cancelled before its launch went through"
    elif attempts >= retry.max_attempts:
        row.state, row.ended_at, row.retry_at = "failed", at, None
        row.reason_code = LAUNCH_FAILED_CODE
        row.reason = f"launch failed {attempts} times, giving up; last: {error}"[:500]
    else:
        retry_at = at + timedelta(seconds=retry.delay_s(attempts))
        row.state, row.retry_at, row.estimated_start_at = "pending", retry_at, retry_at
        row.reason_code = LAUNCH_RETRY_CODE
        when = retry_at.strftime("%Y-%m-%d %H:%M:%SZ")
        row.reason = (
            f"launch failed (attempt {attempts} of {retry.max_attempts}): {error}; retried from {when}"[:500]
        )
    if row.state != "pending":
        events.append(ended_event(row, at))
    record_events(session, events)
    session.flush()


def _late_end(session: Session, cluster: Cluster, event: BackendEvent) -> bool:
    """The end of a run the scheduler already closed (it preempted the job, which then ran until its
    process exited): the segment is charged up to that end (``extend_segment``), or up to the stop
    signal for a run the backend preempted gracefully (``signalled_s``): its grace period is free."""
    if event.kind not in ENDS | {"lost", "requeued"} or not event.backend_ref or event.job_id <= 0:
        return False
    row = claim_job(session, event.job_id)
    if row is None:
        return False
    end_s = event.at_s if event.signalled_s is None else min(event.at_s, event.signalled_s)
    return extend_segment(session, cluster, row, event.backend_ref, to_dt(end_s)) is not None


def _earlier_run(session: Session, row: JobRow, event: BackendEvent) -> bool:
    """Whether ``event`` is the end of an earlier run of a job whose next start is not yet launched
    (its reference still ``pending:``, as while its launch waits for that very run to stop): a run
    whose segment was already metered, by its reference."""
    ref = event.backend_ref
    if event.kind not in ENDS | {"lost", "requeued"} or not ref or ref.startswith(PENDING_REF_PREFIX):
        return False
    if row.backend_ref == ref:
        return False
    metered = select(UsageRow.id).where(UsageRow.job_id == row.id, UsageRow.backend_ref == ref).limit(1)
    return session.scalar(metered) is not None


def apply_event(
    session: Session,
    cluster: Cluster,
    event: BackendEvent,
    max_lost_requeues: int,
    retry: LaunchRetry | None = None,
) -> bool:
    """Apply ``event``; returns whether it changed the job."""
    if event.kind == "checkpoint":  # whatever the job's state: a run in its grace period reports too
        return record_checkpoint(session, event.job_id, to_dt(event.at_s))
    row = claim_job(session, event.job_id, JobRow.state == "running", _same_segment(event))
    if row is None or _earlier_run(session, row, event):
        return _late_end(session, cluster, event)
    if event.kind == "started":
        row.backend_ref = event.backend_ref or row.backend_ref
        started = to_dt(event.at_s)
        if row.started_at is not None and started > row.started_at:
            row.started_at = started
        session.flush()
        return True
    at = to_dt(event.at_s)
    if row.started_at is not None and at < row.started_at:
        at = row.started_at
    if _never_launched(row, event):
        launch_failed(session, row, at, _describe(event), retry or LaunchRetry())
        return True
    ref = event.backend_ref or None
    events: list[JobEvent] = []
    if event.kind in ENDS:
        end_segment(session, cluster, row, at)
        row.state, row.exit_code, row.ended_at = event.kind, event.exit_code, at
        row.reason_code, row.reason = event.kind, _describe(event)
    elif event.kind in ("lost", "requeued"):
        events.append(event_of(row, event.kind, at, _describe(event), backend_ref=ref))
        end_segment(session, cluster, row, at)
        row.backend_ref, row.started_at = "", None
        if row.cancel_requested_at is not None:
            row.state, row.ended_at = "cancelled", at
            row.reason_code, row.reason = "cancelled", f"cancelled ({_describe(event)})"
        elif event.kind == "lost" and row.restarts >= max_lost_requeues:
            row.state, row.ended_at = "lost", at
            row.reason_code, row.reason = "lost", f"{_describe(event)}; requeued {row.restarts} times already"
        else:
            row.state, row.restarts = "pending", row.restarts + 1
            row.reason_code, row.reason = event.kind, f"{_describe(event)}; back in the queue"
    else:
        return False
    if row.state != "pending":
        events.append(ended_event(row, at, ref))
    record_events(session, events)
    session.flush()
    return True
