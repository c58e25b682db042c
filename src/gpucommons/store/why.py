"""Why a job waits: its reason, its place in line, an estimated start and what would unblock it.

A job a commons stage refuses waits with the stage's name as its code (``no-award``, ``budget`` and
``award-model`` from the award stage, ``residency``, ``quota``, ``power``, ``array-limit``) and the
stage's detail with its figures ("site daejeon would draw 10.04 MW, cap 10.00 MW"; "reservation 7
starts at 2027-01-05 14:00 UTC; 896 of 1,024 GPUs drained"), as the scheduling cycle recorded them.
Read-only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from gpucommons.domain.cluster import Cluster
from gpucommons.policy.placement.shapes import accepted_pools
from gpucommons.store.jobs import AllocationRow, JobRow

UNBLOCK = {
    "new": "nothing: the next scheduling cycle will consider it",
    "no-award": "an active award for the project (apply to a program, or ask an admin to activate one)",
    "budget": "more GPU-hours: an award extension or a new award",
    "award-model": "accepting the accelerator model of the project's award, or an award for this model",
    "never-fits": "asking for fewer GPUs per node or accepting more accelerator models",
    "resources": "running jobs ending and freeing enough GPUs",
    "priority": "the job ahead of it starting",
    "reservation": "the reserved job ahead of it starting, or a shorter time limit to backfill",
    "quota": "the project's running jobs ending, or a larger guaranteed award",
    "residency": "a sovereign site in the cluster (the job must stay on sovereign sites)",
    "power": "the site's draw falling under its cap: its running jobs ending, or a higher cap",
    "array-limit": "a running task of its array ending (the array's %N limit)",
    "not-examined": "jobs ahead of it starting; it is considered once capacity frees up",
    "preempted": "free GPUs to restart on",
    "lost": "nothing: it was requeued and restarts when GPUs are free",
    "requeued": "nothing: it restarts when GPUs are free",
    "launch-retry": "nothing: its launch failed; it is tried again from the estimated start",
    "node-unavailable": "nothing: its node went out of service before it started; it is placed again",
}


# The reservations stage (design note 0016) shares the ``reservation`` code with backfill's reserved
# start; which one held a job back, and so what lifts it, is told by the detail the stage wrote.
RESERVATION_UNBLOCK = (
    (
        re.compile(r"^reservation \d+ starts at "),
        "the reservation's start: its nodes are being drained for it, and its jobs start then",
    ),
    (
        re.compile(r"GPUs are held for reservation \d+ until "),
        "the reservation's end, or room outside the nodes it holds",
    ),
    (
        re.compile(r"GPUs are held for reservation \d+ from "),
        "room outside the reservation's nodes, or a time limit that ends before it starts",
    ),
)


def _unblock_text(code: str, detail: str) -> str:
    """What would let a job waiting for ``code`` (with ``detail``) start."""
    if code == "reservation":
        for pattern, text in RESERVATION_UNBLOCK:
            if pattern.search(detail):
                return text
    return UNBLOCK.get(code, "the scheduler's next decision")


# Reasons free GPUs alone do not lift, so an estimate from running jobs' ends would mislead.
NO_ESTIMATE = frozenset(
    {"no-award", "budget", "award-model", "never-fits", "residency", "power", "array-limit"}
)


@dataclass(frozen=True)
class Why:
    job_id: int
    state: str
    code: str
    detail: str
    position: int | None
    estimated_start_at: datetime | None
    unblock: str


def _estimate_from_running(session: Session, cluster: Cluster, row: JobRow, now: datetime) -> datetime | None:
    """When enough GPUs of accepted models are free if running jobs end at their time limits."""
    pools = {cluster.pools[i].name for i in accepted_pools(cluster, frozenset(row.accepted_models or ()))}
    nodes = {n.index for n in cluster.nodes if n.pool in pools}
    total = sum(n.gpus for n in cluster.nodes if n.index in nodes)
    busy = session.execute(
        select(AllocationRow.job_id, func.count())
        .where(AllocationRow.node_index.in_(nodes))
        .group_by(AllocationRow.job_id)
    ).all()
    free = total - sum(int(c) for _, c in busy)
    if free >= row.gpus:
        return now
    ends = []
    for job in session.scalars(select(JobRow).where(JobRow.id.in_([j for j, _ in busy]))):
        started = job.started_at or now
        ends.append((max(now, started + timedelta(seconds=job.time_limit_s)), dict(busy)[job.id]))
    for end, gpus in sorted(ends):
        free += int(gpus)
        if free >= row.gpus:
            return end
    return None


def why(session: Session, cluster: Cluster, row: JobRow, now: datetime) -> Why:
    if row.state != "pending":
        detail = row.reason or row.state
        return Why(
            row.id, row.state, row.reason_code or row.state, detail, None, None, "nothing: it is not waiting"
        )
    estimated = row.estimated_start_at
    if estimated is None and row.reason_code not in NO_ESTIMATE:
        estimated = _estimate_from_running(session, cluster, row, now)
    return Why(
        row.id,
        row.state,
        row.reason_code,
        row.reason,
        queue_position(session, row),
        estimated,
        _unblock_text(row.reason_code, row.reason),
    )


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
