"""The live engine's view of the active jobs, kept in the process between cycles and re-read only where
the database stamped a change (design note 0013).

A cycle over 100,000 pending jobs cannot afford to read every job row and every GPU allocation, and to
build every policy object and the cluster's capacity again: that took seconds per cycle. The engine
holds the scheduler lease, but the API writes jobs too (submissions, cancels), and so did whichever
scheduler held the lease before; so the view does not keep its own account of what the engine wrote.
It re-reads what the database says changed.

**Change stamps** (migration 0014): the database sets ``jobs.change_stamp`` on every insert and every
update of a column a snapshot reads. ``refresh`` first reads a mark, then every job stamped at or
above the mark the previous refresh read:

- SQLite: each write is stamped one more than the largest stamp, and the mark is the largest stamp
  plus one. Writers take turns at the database's write lock, so stamps grow in commit order: whatever
  commits after the mark was read carries a stamp at or above it.
- PostgreSQL: each write is stamped with its transaction's id, and the mark is the oldest transaction
  id still in progress (``pg_snapshot_xmin``). A change the previous read could not see was written by
  a transaction in progress then or begun since, whose id is at least that mark.

Some rows are read twice; none is missed. The mark is read before the rows, and in a transaction that
has written nothing yet (the cycle's own writes come after its snapshot).

A job's allocations change only in a transaction that also changes its state (a start, an end, a
preemption), so they are read again for each changed job that runs. The cluster's capacity, the
sites' projected draw, the running jobs' columns, expected ends and decayed usage, and the queue in
(submit time, id) order, whole and per tenant, are kept up to date with each change instead of being
rebuilt.

**Reasons** are the one thing the engine writes without a stamp (they are advisory and bump no
version): ``reasons_written`` records what a committed cycle wrote, so the next cycle writes only the
reasons that change, and a full read (``reset``) learns them again from the rows.

Anything inconsistent met while applying a change (a GPU held twice) makes ``refresh`` drop the view
and read everything again; so does a project renamed.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select, text
from sqlalchemy.orm import Session

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job, Placement
from gpucommons.domain.power import PowerModel
from gpucommons.policy.capacity import Capacity
from gpucommons.policy.constraints.draw import SiteDraw
from gpucommons.policy.priority import DEFAULT_CLASS
from gpucommons.policy.snapshot import PendingJob, RunningColumns, RunningJob
from gpucommons.store.base import to_s
from gpucommons.store.jobs import ACTIVE_STATES, AllocationRow, JobRow

ReasonKey = tuple[str, str, datetime | None]  # reason_code, reason, estimated_start_at, as stored
JobColumns = Row[*tuple[Any, ...]]  # a job row as ``_COLUMNS`` read it
IDS_PER_QUERY = 500  # ids in one ``IN`` list
REBUILD_SHARE = 0.02  # more changes than this share of the queue: sort it again instead of inserting

_COLUMNS = (
    JobRow.id,
    JobRow.change_stamp,
    JobRow.project_id,
    JobRow.version,
    JobRow.state,
    JobRow.gpus,
    JobRow.gpus_per_node,
    JobRow.accepted_models,
    JobRow.time_limit_s,
    JobRow.priority_class,
    JobRow.preemptible,
    JobRow.sovereign,
    JobRow.job_class,
    JobRow.array_id,
    JobRow.submitted_at,
    JobRow.started_at,
    JobRow.backend_ref,
    JobRow.restarts,
    JobRow.borrowing,
    JobRow.attained_gpu_s,
    JobRow.cancel_requested_at,
    JobRow.award_id,
    JobRow.retry_at,
    JobRow.reason_code,
    JobRow.reason,
    JobRow.estimated_start_at,
    JobRow.checkpoint_interval_s,
    JobRow.last_checkpoint_at,
)


def policy_job(row: Any, tenant: str) -> Job:
    """The policy's view of a job row (an ORM row or one read by column); the time limit is both its
    estimate and its (unknown) duration."""
    models = frozenset(str(m) for m in row.accepted_models or ())
    return Job(
        id=row.id,
        tenant=tenant,
        gpus=row.gpus,
        submit_s=to_s(row.submitted_at),
        duration_s=row.time_limit_s,
        estimate_s=row.time_limit_s,
        gpus_per_node=row.gpus_per_node,
        accepted_models=models,
        priority_class=row.priority_class,
        preemptible=row.preemptible,
        sovereign=row.sovereign,
        job_class=row.job_class,
        array_id=row.array_id,
        checkpoint_interval_s=row.checkpoint_interval_s,
    )


def read_mark(session: Session) -> int:
    """The stamp from which the next refresh reads (see the module docstring)."""
    if session.get_bind().dialect.name == "postgresql":
        return int(session.scalar(text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")) or 0)
    return int(session.scalar(select(func.max(JobRow.change_stamp))) or 0) + 1


class _Line:
    """Pending jobs in (submit time, id) order: ``items`` is the ordered list itself."""

    def __init__(self, items: Iterable[PendingJob] = ()) -> None:
        self.items = sorted(items, key=_key)
        self.keys = [_key(p) for p in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def add(self, pending: PendingJob) -> None:
        key = _key(pending)
        i = bisect_left(self.keys, key)
        self.keys.insert(i, key)
        self.items.insert(i, pending)

    def remove(self, pending: PendingJob) -> None:
        key = _key(pending)
        i = bisect_left(self.keys, key)
        if i == len(self.keys) or self.keys[i] != key:
            raise LookupError(f"job {key[1]} is not in the line")
        del self.keys[i]
        del self.items[i]


def _key(pending: PendingJob) -> tuple[float, int]:
    return (pending.job.submit_s, pending.job.id)


@dataclass(slots=True)
class ActiveJob:
    """A pending or running job as the view holds it: its row as read, and the policy's object."""

    row: JobColumns
    pending: PendingJob | None = None  # in the queue, or held back until ``held_until_s``
    running: RunningJob | None = None
    held_until_s: float | None = None  # waiting out a launch backoff (``retry_at``)

    @property
    def reason(self) -> ReasonKey:
        return (self.row.reason_code, self.row.reason, self.row.estimated_start_at)


class JobView:
    """The active jobs of one cluster, kept current by ``refresh``; read-only to everyone else."""

    def __init__(
        self, cluster: Cluster, usage_half_life_s: float = 7 * 86_400.0, power_model: PowerModel | None = None
    ) -> None:
        self.cluster = cluster
        self.usage_half_life_s = usage_half_life_s
        self.power_model = power_model or PowerModel()
        self._node_index = {n.name: n.index for n in cluster.nodes}
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next ``refresh`` reads every active job again."""
        self.mark: int | None = None
        self.tenants: dict[int, str] = {}  # project id -> name, as the jobs were built with
        self.jobs: dict[int, ActiveJob] = {}
        self.queue = _Line()
        self.by_tenant: dict[str, _Line] = {}
        self.held: dict[int, ActiveJob] = {}
        self.running: dict[int, RunningJob] = {}
        self.columns = RunningColumns()
        self.ends: list[tuple[float, int]] = []
        self.capacity = Capacity(self.cluster)
        self.draw = SiteDraw(self.cluster, self.power_model)
        self.tenant_gpus: defaultdict[str, int] = defaultdict(int)
        # Each tenant's running jobs' GPUs times 2^((start - t0) / half-life), and (start, id) of every
        # running job in order: their decayed usage at any ``now`` without a walk over them.
        self.usage_t0 = 0.0  # set when everything is read
        self.start_weight: defaultdict[str, float] = defaultdict(float)
        self.starts: list[tuple[float, int]] = []
        self.classed = 0  # queued or running jobs of a class other than the default
        self.arrays: Counter[int] = Counter()  # job arrays with a task in the queue: tasks queued
        self.reasons: defaultdict[ReasonKey, set[int]] = defaultdict(set)  # queued jobs by stored reason
        self._reason_of: dict[int, ReasonKey] = {}
        self._overlay: list[tuple[int, tuple[int, ...] | None]] = []  # this cycle's holds: node, GPUs
        self._unknown_from: float = math.inf
        self.serviced: set[int] = set()  # jobs read by the last refresh whose usage rows may be new

    # -- reading -----------------------------------------------------------------------------------
    def refresh(self, session: Session, tenants: Mapping[int, str], now: float) -> set[int] | None:
        """Bring the view up to what the database holds at ``now``: the ids of the jobs read again,
        or ``None`` when everything was read (the first time, or after ``reset``)."""
        renamed = any(self.tenants.get(p, name) != name for p, name in tenants.items())
        if self.mark is not None and not renamed:
            try:
                return self._changes(session, tenants, now)
            except (LookupError, ValueError):  # the view disagrees with the database: read it all
                pass
        self._load(session, tenants, now)
        return None

    def _load(self, session: Session, tenants: Mapping[int, str], now: float) -> None:
        mark = read_mark(session)
        rows = list(session.execute(select(*_COLUMNS).where(JobRow.state.in_(ACTIVE_STATES))))
        placements = _placements(session, None)
        self.reset()  # only once everything is read: a read that fails leaves the view to read again
        self.tenants = dict(tenants)
        self.usage_t0 = now
        for row in self._known(rows):
            entry = self._entry(row, placements, now)
            if entry is None:
                continue
            self.jobs[row.id] = entry
            if entry.pending is not None and entry.held_until_s is None:
                self._count_queued(entry, +1)
            elif entry.pending is not None:
                self.held[row.id] = entry
            if entry.running is not None:
                self._run(entry.running, +1)
        self._sort_lines()
        self.mark = int(min(mark, self._unknown_from))

    def _known(self, rows: Sequence[JobColumns]) -> list[JobColumns]:
        """The rows of projects the view knows; a job of a project created after the projects were
        read is left for the next refresh (``_unknown_from``: the mark that reads it again)."""
        self._unknown_from = math.inf
        known = []
        for row in rows:
            if row.project_id in self.tenants:
                known.append(row)
            else:
                self._unknown_from = min(self._unknown_from, row.change_stamp or 0)
        return known

    def _changes(self, session: Session, tenants: Mapping[int, str], now: float) -> set[int]:
        assert self.mark is not None
        mark = read_mark(session)
        stamped = list(session.execute(select(*_COLUMNS).where(JobRow.change_stamp >= self.mark)))
        self.tenants.update(tenants)
        rows = [r for r in self._known(stamped) if r.id not in self.jobs or self.jobs[r.id].row != r]
        running = [row.id for row in rows if row.state == "running"]
        placements = _placements(session, running) if running else {}
        self.serviced = {row.id for row in rows if self._serviced(row)}
        self.clear_overlay()
        self.mark = int(min(mark, self._unknown_from))
        changed = {row.id for row in rows}
        due = [
            e
            for e in self.held.values()
            if e.held_until_s is not None and e.held_until_s <= now and e.row.id not in changed
        ]
        changed |= {e.row.id for e in due}
        # Many changes at once (a burst of submissions): the lines are sorted again as a whole.
        bulk = len(changed) > REBUILD_SHARE * max(1, len(self.queue))
        for job_id in sorted(changed):  # all leave first, so GPUs freed can be taken again at once
            old = self.jobs.pop(job_id, None)
            if old is not None:
                self._leave(old, in_lines=not bulk)
        for held in due:
            held.held_until_s = None
        entries: list[tuple[JobColumns, ActiveJob | None]] = [
            *((row, self._entry(row, placements, now)) for row in rows),
            *((e.row, e) for e in due),
        ]
        queued = []
        for row, maybe in entries:
            if maybe is None:
                continue
            entry = self.jobs[row.id] = maybe
            if entry.pending is not None and entry.held_until_s is None:
                queued.append(entry)
                self._count_queued(entry, +1)
            elif entry.pending is not None:
                self.held[row.id] = entry
            if entry.running is not None:
                self._run(entry.running, +1)
        if bulk:
            self._sort_lines()
        else:
            for entry in queued:
                assert entry.pending is not None
                self._line_add(entry.pending)
        return changed

    def _serviced(self, row: JobColumns) -> bool:
        """Whether ``row`` may have changed usage rows since the view last read it: a segment is
        metered (``end_segment``, ``extend_segment``) only as the job's service grows or its run
        ends; a job the view does not hold may have run before."""
        old = self.jobs.get(row.id)
        if old is None:
            return bool(row.state != "pending" or row.attained_gpu_s > 0)
        was = old.row
        return bool(
            was.attained_gpu_s != row.attained_gpu_s or (was.state == "running" and row.state != "running")
        )

    def _sort_lines(self) -> None:
        """The queue and each tenant's line, sorted again from the queued jobs."""
        queued = [e.pending for e in self.jobs.values() if e.pending is not None and e.held_until_s is None]
        self.queue = _Line(queued)
        groups: defaultdict[str, list[PendingJob]] = defaultdict(list)
        for p in self.queue.items:
            groups[p.job.tenant].append(p)
        self.by_tenant = {t: _Line(group) for t, group in groups.items()}

    def _entry(self, row: JobColumns, placements: Mapping[int, Placement], now: float) -> ActiveJob | None:
        """What the view keeps of ``row``; ``None`` for a job no cycle sees (ended, asked to cancel)."""
        tenant = self.tenants[row.project_id]
        if row.state == "pending" and row.cancel_requested_at is None:
            job = policy_job(row, tenant)
            pending = PendingJob(
                job, attained_gpu_s=row.attained_gpu_s, queued_since_s=job.submit_s, restarts=row.restarts
            )
            retry_s = to_s(row.retry_at) if row.retry_at is not None else None
            held = retry_s if retry_s is not None and retry_s > now else None
            return ActiveJob(row, pending=pending, held_until_s=held)
        if row.state == "running":
            job = policy_job(row, tenant)
            placement = placements.get(row.id, Placement(()))
            started_s = to_s(row.started_at) if row.started_at else 0.0
            running = RunningJob(
                job,
                placement,
                started_s,
                row.attained_gpu_s,
                row.borrowing,
                row.award_id,
                last_checkpoint_s=_checkpoint_in_run_s(row, started_s),
            )
            return ActiveJob(row, running=running)
        return None

    # -- keeping the derived state -------------------------------------------------------------------
    def _leave(self, entry: ActiveJob, in_lines: bool) -> None:
        """Take a job's old state out of everything derived from it (out of the lines too, unless
        they are to be sorted again)."""
        if entry.running is not None:
            self._run(entry.running, -1)
        elif entry.pending is not None and entry.held_until_s is not None:
            del self.held[entry.row.id]
        elif entry.pending is not None:
            if in_lines:
                self.queue.remove(entry.pending)
                tenant = entry.pending.job.tenant
                line = self.by_tenant[tenant]
                line.remove(entry.pending)
                if not line:
                    del self.by_tenant[tenant]
            self._count_queued(entry, -1)

    def _line_add(self, pending: PendingJob) -> None:
        self.queue.add(pending)
        line = self.by_tenant.get(pending.job.tenant)
        if line is None:
            line = self.by_tenant[pending.job.tenant] = _Line()
        line.add(pending)

    def _count_queued(self, entry: ActiveJob, step: int) -> None:
        pending = entry.pending
        assert pending is not None
        job = pending.job
        if job.priority_class != DEFAULT_CLASS:
            self.classed += step
        if job.array_id is not None:
            self.arrays[job.array_id] += step
            if not self.arrays[job.array_id]:
                del self.arrays[job.array_id]
        if step > 0:
            key = self._reason_of[job.id] = entry.reason
            self.reasons[key].add(job.id)
        else:
            key = self._reason_of.pop(job.id)
            group = self.reasons[key]
            group.discard(job.id)
            if not group:
                del self.reasons[key]

    def _run(self, running: RunningJob, step: int) -> None:
        job = running.job
        if step > 0:
            self.capacity.take(running.placement)
            self.draw.add(running.placement)
            self.running[job.id] = running
            self.columns.add(running)
            insort(self.ends, (running.expected_end_s(), job.id))
            insort(self.starts, (running.started_s, job.id))
        else:
            self.capacity.give(running.placement)
            self.draw.remove(running.placement)
            del self.running[job.id]
            self.columns.remove(job.id)
            del self.ends[bisect_left(self.ends, (running.expected_end_s(), job.id))]
            del self.starts[bisect_left(self.starts, (running.started_s, job.id))]
        self.tenant_gpus[job.tenant] += step * job.gpus
        self.start_weight[job.tenant] += step * job.gpus * self._growth(running.started_s)
        if not self.tenant_gpus[job.tenant]:
            del self.tenant_gpus[job.tenant]
            del self.start_weight[job.tenant]  # exactly 0, float residue and all
        if job.priority_class != DEFAULT_CLASS:
            self.classed += step

    def _growth(self, at_s: float) -> float:
        return float(2.0 ** ((at_s - self.usage_t0) / self.usage_half_life_s))

    def rebase_usage(self, now: float) -> None:
        """Sum the start weights again from the running jobs, at ``now`` as the new reference: the
        sums stay small, and the rounding of many additions and removals does not build up."""
        self.usage_t0 = now
        self.start_weight = defaultdict(float)
        for running in self.running.values():
            self.start_weight[running.job.tenant] += running.job.gpus * self._growth(running.started_s)

    def running_usage(self, now: float) -> dict[str, float]:
        """Each tenant's running jobs' decayed usage at ``now``: a job holding ``g`` GPUs since ``s``
        weighs ``g * tau * (1 - 2^-(now-s)/h)``, summed as ``tau * (G - 2^-(now-t0)/h * W)`` from the
        tenant's GPUs ``G`` and start weight ``W``; a start after ``now`` weighs nothing."""
        half = self.usage_half_life_s
        tau = half / math.log(2.0)
        scale = 1.0 / self._growth(now)
        usage = {t: tau * (gpus - scale * self.start_weight[t]) for t, gpus in self.tenant_gpus.items()}
        for started_s, job_id in reversed(self.starts):
            if started_s <= now:
                break
            job = self.running[job_id].job  # counted above with a weight below 0: taken out again
            usage[job.tenant] -= job.gpus * tau * (1.0 - 2.0 ** ((started_s - now) / half))
        return usage

    # -- one cycle's overlay on the capacity ---------------------------------------------------------
    def overlay(self, down: Iterable[str], held_gpus: Mapping[str, int | None]) -> None:
        """For one cycle: nodes ``down`` offer nothing, and backend jobs no job owns hold ``held_gpus``
        (node name -> GPU count, of its free GPUs; ``None``: the whole node). The previous cycle's
        overlay is taken off first."""
        self.clear_overlay()
        by_name = self._node_index
        capacity = self.capacity
        for name in sorted(set(down)):
            node = by_name.get(name)
            if node is not None:
                self._down(node)
        for name, count in sorted(held_gpus.items()):
            node = by_name.get(name)
            if node is None:
                continue
            if count is None:
                self._down(node)
                continue
            taken = capacity.free_indices(node)[: max(0, count)]
            if taken:
                capacity.allocate_indices(node, taken)
                self._overlay.append((node, taken))

    def _down(self, node: int) -> None:
        """Take a node out for this cycle (every node is up outside an overlay)."""
        if (node, None) not in self._overlay:
            self.capacity.set_up(node, False)
            self._overlay.append((node, None))

    def clear_overlay(self) -> None:
        for node, gpus in reversed(self._overlay):
            if gpus is None:
                self.capacity.set_up(node, True)
            else:
                self.capacity.release(node, gpus)
        self._overlay = []

    # -- reasons -------------------------------------------------------------------------------------
    def stored_reason(self, job_id: int) -> ReasonKey | None:
        """The reason the database holds for a queued job, as far as the view knows."""
        return self._reason_of.get(job_id)

    def reasons_written(self, written: Mapping[int, ReasonKey]) -> None:
        """A committed cycle wrote these reasons (to the jobs among them still pending)."""
        for job_id, key in written.items():
            old = self._reason_of.get(job_id)
            if old is None:
                continue  # left the queue meanwhile: its next read brings what is stored
            group = self.reasons[old]
            group.discard(job_id)
            if not group:
                del self.reasons[old]
            self._reason_of[job_id] = key
            self.reasons[key].add(job_id)

    def queued_ids_not_at(self, key: ReasonKey) -> Iterable[int]:
        """Queued jobs whose stored reason is not ``key`` (a cycle's reason for the jobs it did not
        examine): in every group of reasons but that one, so the cost is that of the jobs to write."""
        for other, ids in self.reasons.items():
            if other != key:
                yield from ids


def _checkpoint_in_run_s(row: JobColumns, started_s: float) -> float | None:
    """The job's last reported checkpoint if this run made it (one of an earlier run, or the earlier
    run's last in its grace period, saves this run nothing)."""
    if row.last_checkpoint_at is None:
        return None
    at_s = to_s(row.last_checkpoint_at)
    return at_s if at_s >= started_s else None


def _placements(session: Session, job_ids: Sequence[int] | None) -> dict[int, Placement]:
    """The placements of ``job_ids`` (every job's when ``None``) from their allocations."""
    per_job: defaultdict[int, defaultdict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    query = select(AllocationRow.job_id, AllocationRow.node_index, AllocationRow.gpu_index)
    chunks = (
        [None]
        if job_ids is None
        else [job_ids[i : i + IDS_PER_QUERY] for i in range(0, len(job_ids), IDS_PER_QUERY)]
    )
    for chunk in chunks:
        where = query if chunk is None else query.where(AllocationRow.job_id.in_(chunk))
        for job_id, node, gpu in session.execute(where):
            per_job[job_id][node].append(gpu)
    return {
        job_id: Placement(tuple((n, tuple(sorted(g))) for n, g in sorted(nodes.items())))
        for job_id, nodes in per_job.items()
    }
