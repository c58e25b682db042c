"""The ``reservations`` stage: whole nodes held for one tenant from a start time for a duration, so a
gang of hundreds of GPUs starts at its planned time (``domain/reservation.py``; design note 0016).

Each cycle, for each reservation's occurrence in force or next (``Reservation.window_at``), the gate
picks the nodes it holds by one rule over the snapshot, so the live engine and a replay pick alike and
a cycle picks what the one before did unless jobs moved:

- candidates: the up nodes of its model (any, for ``model=None``) that no reservation of a lower id
  holds; never a node running a job that cannot be stopped (another tenant's non-preemptible job) and
  would still run at the start;
- ranked: nodes where nothing would have to be stopped at the start first; then those where something
  would, by the work stopping it would lose (``checkpoint_aware``) or else by when it ends; during the
  window, the nodes the tenant's jobs already use come first; ties by node index;
- ``within``: the NVLink domain (``nvlink``; a pool without domains counts as one) or network block
  (``block``) whose best nodes rank best; the fewest whole nodes that hold ``gpus``.

Before the start (the drain) no job whose time limit would end after the start is placed on those
nodes, the tenant's own included (they must be empty at the start for the run they were reserved for);
shorter jobs backfill them. There is no horizon to tune: a job is kept off from ``start - its time
limit`` on. A job of the tenant kept off that finds no room elsewhere waits with "reservation 7 starts
at ...; 896 of 1,024 GPUs drained" (drained: held GPUs free now).

During the window only the tenant's jobs use the nodes: they start there before the queue is scanned
(``held_for``; they take nothing a job ahead of them could use), and any other job still there is
evicted at the window's first cycle, through the normal preemption path. With ``lend_idle`` a
preemptible job of another tenant whose time limit ends before the window does may use held GPUs the
tenant neither uses nor asks for (its pending jobs' GPUs); such a job is evicted, the least loss first,
when the tenant asks for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import cast

import numpy as np
import numpy.typing as npt

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.domain.reservation import Reservation
from gpucommons.policy.decisions import PendingReason, Start
from gpucommons.policy.lost_work import lost_gpu_s_columns, since_checkpoint_s
from gpucommons.policy.placement.fit import group_of
from gpucommons.policy.protocols import AdmitOnly, Admitted, Fence, Verdict
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot

CODE = "reservation"


def when_text(seconds: float) -> str:
    """Policy seconds as people read a start (UTC: the live service's clock is Unix time; a replay's
    starts at 1970-01-01)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def limit_end_s(pending: PendingJob, job: Job, now: float) -> float:
    """When ``job`` would reach its time limit if it started now (``RunningJob.expected_end_s``)."""
    done_s = pending.attained_gpu_s / job.gpus if job.gpus else 0.0
    return now + max(0.0, job.estimate_s - done_s)


@lru_cache(maxsize=256)
def candidate_nodes(cluster: Cluster, model: str | None) -> npt.NDArray[np.int64]:
    """The nodes of ``model`` (every node for ``None``), in index order."""
    return np.array([n.index for n in cluster.nodes if model is None or n.model == model], dtype=np.int64)


@lru_cache(maxsize=256)
def candidate_mask(cluster: Cluster, model: str | None) -> npt.NDArray[np.bool_]:
    """Per node, whether it is of ``model`` (``True`` everywhere for ``None``)."""
    mask = np.zeros(len(cluster.nodes), dtype=np.bool_)
    mask[candidate_nodes(cluster, model)] = True
    return mask


@lru_cache(maxsize=256)
def node_gpus(cluster: Cluster) -> npt.NDArray[np.int64]:
    return np.array([n.gpus for n in cluster.nodes], dtype=np.int64)


@lru_cache(maxsize=256)
def groups(cluster: Cluster, within: str) -> npt.NDArray[np.int64]:
    """Per node, the group a reservation ``within`` it must stay in, numbered: its pool's NVLink domain
    (a pool without domains is one) or network block; one group for ``within=""``."""
    if within == "":
        return np.zeros(len(cluster.nodes), dtype=np.int64)
    pool_index = {p.name: i for i, p in enumerate(cluster.pools)}
    domains = group_of(cluster)
    keys = []
    for node in cluster.nodes:
        pool = pool_index[node.pool]
        if within == "block":
            keys.append((pool, node.block))
        else:
            nvlink = cluster.pools[pool].topology.nvlink_domain_nodes > 1
            keys.append((pool, domains[node.index] if nvlink else 0))
    numbered = {key: i for i, key in enumerate(sorted(set(keys)))}
    return np.array([numbered[key] for key in keys], dtype=np.int64)


@dataclass(slots=True)
class _NodeJobs:
    """What runs on every node, as one occurrence sees it (arrays indexed by node), and the running
    rows behind it (``RunningColumns`` rows) that may have to leave or be reclaimed."""

    blocked: npt.NDArray[np.bool_]  # a job that cannot be stopped and would still run at the start
    leaving: npt.NDArray[np.int64]  # jobs that must be stopped at the start
    release_s: npt.NDArray[np.float64]  # when the last of them ends by its time limit
    lost_gpu_s: npt.NDArray[np.float64]  # work stopping them would lose
    tenant_gpus: npt.NDArray[np.float64]  # the reserving tenant's GPUs (during the window)
    leave_rows: npt.NDArray[np.int64]
    lent_rows: npt.NDArray[np.int64]  # borrowing idle GPUs (``lend_idle``)


@dataclass(slots=True)
class _Occurrence:
    reservation: Reservation
    start_s: float
    end_s: float
    open_now: bool  # inside its window
    nodes: tuple[int, ...] = ()
    node_set: frozenset[int] = frozenset()
    evict: list[RunningJob] = field(default_factory=list)
    lendable_gpus: int = 0  # held GPUs free and not asked for by the tenant (``lend_idle``)


@dataclass
class ReservationGate(AdmitOnly):
    snapshot: Snapshot
    now: float
    occurrences: tuple[_Occurrence, ...]
    checkpoint_aware: bool
    _held: bool = False
    _fences: dict[tuple[tuple[int, bool], ...], Fence] = field(default_factory=dict)
    _gone: set[int] = field(default_factory=set)  # stopped in this cycle before the nodes were picked

    admits_all = True  # it keeps jobs off nodes (``fence_for``) and refuses no one: the cycle skips it

    def admit(self, pending: PendingJob, admitted: Admitted | None) -> Verdict:
        return admitted

    # -- the fence --------------------------------------------------------------------------------
    def fence_for(self, pending: PendingJob) -> Fence | None:
        job = pending.job
        ends_s = limit_end_s(pending, job, self.now)
        key: tuple[tuple[int, bool], ...] = ()
        for i, occ in enumerate(self.occurrences):
            if ends_s <= occ.start_s:
                continue  # ends before it starts: free to use its nodes (the common case)
            if self._keeps_off(occ, job, ends_s):
                key = (*key, (i, job.tenant == occ.reservation.tenant))
        if not key:
            return None
        fence = self._fences.get(key)
        if fence is None:
            self._hold()
            nodes = tuple(sorted({n for i, _ in key for n in self.occurrences[i].nodes}))
            fence = self._fences[key] = Fence(key, nodes)
        return fence

    def _keeps_off(self, occ: _Occurrence, job: Job, ends_s: float) -> bool:
        if not occ.open_now:
            return ends_s > occ.start_s
        res = occ.reservation
        if job.tenant == res.tenant:
            return False
        if res.lend_idle and job.preemptible and ends_s <= occ.end_s:
            self._hold()
            return job.gpus > occ.lendable_gpus
        return True

    def held_for(self) -> Sequence[tuple[tuple[int, ...], Sequence[PendingJob]]]:
        out = []
        queues = self.snapshot.tenant_queues()
        for occ in self.occurrences:
            if occ.open_now:
                waiting = queues.get(occ.reservation.tenant)
                if waiting:
                    self._hold()
                    out.append((occ.nodes, list(waiting)))
        return out

    def fenced_reason(self, fence: Fence, pending: PendingJob, free_gpus: int) -> PendingReason | None:
        key = cast(tuple[tuple[int, bool], ...], fence.key)  # made by ``fence_for``
        capacity = self.snapshot.capacity
        for i, owner in key:
            occ = self.occurrences[i]
            if owner and not occ.open_now:
                res = occ.reservation
                drained = sum(capacity.free_gpus(n) for n in occ.nodes)
                detail = (
                    f"reservation {res.id} starts at {when_text(occ.start_s)}; "
                    f"{drained:,} of {res.gpus:,} GPUs drained"
                )
                figures = (
                    ("reservation", float(res.id)),
                    ("start_s", occ.start_s),
                    ("drained_gpus", float(drained)),
                    ("reserved_gpus", float(res.gpus)),
                )
                return PendingReason(CODE, detail, estimated_start_s=occ.start_s, figures=figures)
        if free_gpus < pending.job.gpus:
            return None  # no room even on the held nodes: it waits for room, as any job
        occ = self.occurrences[key[0][0]]
        res = occ.reservation
        held = sum(self.snapshot.cluster.nodes[n].gpus for n in occ.nodes)
        if occ.open_now:
            detail = f"{held:,} GPUs are held for reservation {res.id} until {when_text(occ.end_s)}"
        else:
            detail = (
                f"{held:,} GPUs are held for reservation {res.id} from {when_text(occ.start_s)}; "
                "only a job whose time limit ends by then may use them"
            )
        figures = (
            ("reservation", float(res.id)),
            ("start_s", occ.start_s),
            ("end_s", occ.end_s),
            ("held_gpus", float(held)),
        )
        return PendingReason(
            CODE, detail, estimated_start_s=occ.end_s if occ.open_now else None, figures=figures
        )

    # -- tallies and evictions --------------------------------------------------------------------
    def preempted(self, running: RunningJob) -> None:
        self._gone.add(running.job.id)

    def started(self, start: Start) -> Start:
        for occ in self.occurrences:
            if occ.open_now and occ.reservation.lend_idle and start.job.tenant != occ.reservation.tenant:
                occ.lendable_gpus -= _gpus_on(start.placement.node_gpus, occ.node_set)
        return start

    def evictions(self) -> Sequence[tuple[RunningJob, str]]:
        """The other tenants' jobs on a reservation's nodes when its window is open (at its first
        cycle; later ones only when jobs moved), and borrowers of idle GPUs the tenant asks for."""
        if not any(occ.open_now for occ in self.occurrences):
            return ()
        self._hold()
        out: dict[int, tuple[RunningJob, str]] = {}
        for occ in self.occurrences:
            reason = f"reservation {occ.reservation.id} holds its nodes from {when_text(occ.start_s)}"
            for victim in occ.evict:
                out.setdefault(victim.job.id, (victim, reason))
        return [out[job_id] for job_id in sorted(out)]

    # -- which nodes each occurrence holds ----------------------------------------------------------
    def _hold(self) -> None:
        """Pick every occurrence's nodes (once per cycle, on first need), in reservation id order."""
        if self._held:
            return
        self._held = True
        count = len(self.snapshot.cluster.nodes)
        free = np.array(self.snapshot.capacity.up_flags(), dtype=np.bool_)
        for occ in self.occurrences:
            jobs = self._jobs_on_nodes(occ, count)
            occ.nodes = self._choose(occ, jobs, free)
            occ.node_set = frozenset(occ.nodes)
            free[list(occ.nodes)] = False
            if occ.open_now:
                self._plan_evictions(occ, jobs)

    def _jobs_on_nodes(self, occ: _Occurrence, count: int) -> _NodeJobs:
        """Before the window, the other tenants' jobs still running at the start; during it, every job
        (the tenant's own count as its use, lent ones as borrowers), aggregated per node."""
        res = occ.reservation
        columns = self.snapshot.columns()
        ends = columns.expected_end_s()
        preemptible = columns.preemptible()
        node, span, gpus = columns.first_node(), columns.node_count(), columns.gpus()
        # Only jobs on the reservation's model matter (a gang stays in one pool, so its first node says).
        model = candidate_mask(self.snapshot.cluster, res.model)[node] & (span > 0)
        mine = model & (columns.tenants() == columns.tenant_code(res.tenant))
        others = model & ~mine
        if self._gone:
            others &= ~np.isin(columns.ids(), np.fromiter(self._gone, dtype=np.int64))
        if occ.open_now:
            at_s = self.now
            lent = others & preemptible & (ends <= occ.end_s) if res.lend_idle else np.zeros_like(mine)
            pinned = others & ~preemptible
            leave = others & preemptible & ~lent
        else:
            at_s = occ.start_s
            mine = np.zeros_like(mine)  # the tenant's own may stay into its window
            staying = others & (ends > occ.start_s)
            pinned = staying & ~preemptible
            leave = staying & preemptible
            lent = mine
        lost = lost_gpu_s_columns(columns, at_s) if self.checkpoint_aware else np.zeros(len(ends))
        # One entry per (job, node it holds devices on): a one-node job's row as it is, a gang's spread
        # over its placement (read from the running job: gangs are few).
        rows = np.flatnonzero(mine | pinned | leave)
        row_of = rows[span[rows] == 1]
        at_node, gpus_at = node[row_of], gpus[row_of]
        gangs = rows[span[rows] > 1]
        if len(gangs):
            running = self.snapshot.running
            spread = [_spread(running[i].placement.node_gpus) for i in columns.ids()[gangs].tolist()]
            row_of = np.concatenate((row_of, np.repeat(gangs, span[gangs])))
            at_node = np.concatenate((at_node, *(on for on, _ in spread)))
            gpus_at = np.concatenate((gpus_at, *(taken for _, taken in spread)))
        leaves, mines = leave[row_of], mine[row_of]
        jobs = _NodeJobs(
            blocked=np.zeros(count, dtype=np.bool_),
            leaving=np.bincount(at_node[leaves], minlength=count),
            release_s=np.zeros(count, dtype=np.float64),
            lost_gpu_s=_summed(at_node[leaves], lost[row_of[leaves]], count),
            tenant_gpus=_summed(at_node[mines], gpus_at[mines], count),
            leave_rows=np.flatnonzero(leave),
            lent_rows=np.flatnonzero(lent),
        )
        jobs.blocked[at_node[pinned[row_of]]] = True
        np.maximum.at(jobs.release_s, at_node[leaves], ends[row_of[leaves]])
        return jobs

    def _choose(self, occ: _Occurrence, jobs: _NodeJobs, free: npt.NDArray[np.bool_]) -> tuple[int, ...]:
        """The fewest best-ranked candidate nodes that hold the reservation's GPUs, in one group when it
        must stay ``within`` one (see the module docstring); fewer when no group has enough."""
        res = occ.reservation
        cluster = self.snapshot.cluster
        nodes = candidate_nodes(cluster, res.model)
        nodes = nodes[free[nodes] & ~jobs.blocked[nodes]]
        if not len(nodes):
            return ()
        stops = jobs.leaving[nodes] > 0
        cost = np.where(stops, cost_of(jobs, nodes, self.checkpoint_aware), 0.0)
        mine = jobs.tenant_gpus[nodes]
        nodes = nodes[np.lexsort((nodes, cost, -mine, stops))]
        sizes = node_gpus(cluster)
        group = groups(cluster, res.within)[nodes]
        aware = self.checkpoint_aware
        best: tuple[tuple[float, ...], npt.NDArray[np.int64]] | None = None
        for g in np.unique(group).tolist():
            members = nodes[group == g]
            held = np.cumsum(sizes[members])
            take = min(len(members), int(np.searchsorted(held, res.gpus)) + 1)
            picked = members[:take]
            short = int(held[take - 1]) < res.gpus
            score = (
                float(short),
                -float(held[take - 1]) if short else 0.0,
                float(np.count_nonzero(jobs.leaving[picked])),
                -float(jobs.tenant_gpus[picked].sum()),
                float(np.where(jobs.leaving[picked] > 0, cost_of(jobs, picked, aware), 0.0).sum()),
                float(picked[0]),
            )
            if best is None or score < best[0]:
                best = (score, picked)
        assert best is not None
        return tuple(sorted(best[1].tolist()))

    def _plan_evictions(self, occ: _Occurrence, jobs: _NodeJobs) -> None:
        """During the window: every job that must leave the held nodes goes; with ``lend_idle``,
        borrowers go too (least loss, else newest, first) while the tenant asks for more than is free."""
        running, columns = self.snapshot.running, self.snapshot.columns()
        ids, node, span = columns.ids(), columns.first_node(), columns.node_count()
        held = occ.node_set
        held_mask = np.zeros(len(self.snapshot.cluster.nodes), dtype=np.bool_)
        held_mask[list(held)] = True

        def on_held(rows: npt.NDArray[np.int64]) -> list[RunningJob]:
            """The jobs of ``rows`` with a device on a held node (one-node jobs vectorized)."""
            rows = rows[(span[rows] > 1) | ((span[rows] == 1) & held_mask[node[rows]])]
            out = []
            for row in rows.tolist():
                r = running[int(ids[row])]
                if span[row] == 1 or any(n in held for n in r.placement.nodes):
                    out.append(r)
            return out

        evict = {r.job.id: r for r in on_held(jobs.leave_rows)}
        res = occ.reservation
        if res.lend_idle:
            capacity = self.snapshot.capacity
            tenant_gpus = int(jobs.tenant_gpus[list(occ.nodes)].sum()) if occ.nodes else 0
            free = sum(capacity.free_gpus(n) for n in occ.nodes)
            free += sum(_gpus_on(r.placement.node_gpus, held) for r in evict.values())
            waiting = self.snapshot.tenant_queues().get(res.tenant) or ()
            asked = min(sum(p.job.gpus for p in waiting), max(0, res.gpus - tenant_gpus))
            now = self.now
            lent = on_held(jobs.lent_rows)
            if self.checkpoint_aware:
                lent.sort(key=lambda r: (since_checkpoint_s(r, now), -r.started_s, r.job.id))
            else:
                lent.sort(key=lambda r: (-r.started_s, r.job.id))
            for r in lent:
                if free >= asked:
                    break
                evict[r.job.id] = r
                free += _gpus_on(r.placement.node_gpus, held)
            occ.lendable_gpus = max(0, free - asked)
        occ.evict = [evict[job_id] for job_id in sorted(evict)]


@lru_cache(maxsize=16_384)
def _spread(
    node_gpus: tuple[tuple[int, tuple[int, ...]], ...],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """A gang's nodes and its GPUs on each, as arrays (made once per placement: a running gang's is
    looked at every cycle a reservation is open or being drained for)."""
    nodes = np.array([n for n, _ in node_gpus], dtype=np.int64)
    return nodes, np.array([len(g) for _, g in node_gpus], dtype=np.float64)


def _summed(
    nodes: npt.NDArray[np.int64], values: npt.NDArray[np.float64], count: int
) -> npt.NDArray[np.float64]:
    """``values`` summed per node (an array of ``count`` nodes)."""
    return np.bincount(nodes, weights=values, minlength=count).astype(np.float64)


def cost_of(jobs: _NodeJobs, nodes: npt.NDArray[np.int64], checkpoint_aware: bool) -> npt.NDArray[np.float64]:
    """What holding each node costs: the work stopping its jobs would lose, or when they end."""
    return jobs.lost_gpu_s[nodes] if checkpoint_aware else jobs.release_s[nodes]


def _gpus_on(node_gpus: tuple[tuple[int, tuple[int, ...]], ...], nodes: frozenset[int]) -> int:
    return sum(len(gpus) for node, gpus in node_gpus if node in nodes)


@dataclass(frozen=True)
class ReservationStage:
    """Opens a gate while any reservation has an occurrence in force or to come (nothing otherwise:
    a run without reservations pays nothing for the stage)."""

    checkpoint_aware: bool = False
    name: str = CODE

    def open(self, snapshot: Snapshot, now: float) -> ReservationGate | None:
        if not snapshot.reservations:
            return None
        occurrences = []
        for res in sorted(snapshot.reservations, key=lambda r: r.id):
            window = res.window_at(now)
            if window is not None:
                occurrences.append(_Occurrence(res, window[0], window[1], window[0] <= now))
        if not occurrences:
            return None
        return ReservationGate(snapshot, now, tuple(occurrences), self.checkpoint_aware)
