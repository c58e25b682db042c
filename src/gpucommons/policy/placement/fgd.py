"""FGD: Fragmentation Gradient Descent (Weng et al., USENIX ATC'23).

A node's fragmentation for one request shape is the free GPU milli that shape could not use there: all of
it when the shape cannot run on the node at all (model not accepted, too little CPU or memory, too few
GPUs with room), otherwise the free milli on GPUs too small for the shape's per-GPU share. Weighting
shapes by how often they arrive gives the node's *expected* fragmentation for the current mix of
requests; FGD puts each job where that expectation grows least (the steepest descent of cluster
fragmentation), choosing the GPU within the node the same way.

The mix is an explicit input, never learned from ``place`` calls (a job retried every cycle would count
once per try, and decisions would depend on the process's history): ``observe_workload`` sets it. The
fill experiment and the replay hand over the whole trace up front, as the paper's simulator does (the
workload is assumed known from history); the live engine hands over the jobs pending and running at
each cycle. Memoized scores are dropped only when the mix actually changes. Without a workload every
node scores 0 and the choice falls to the scored placer's tie-break.

Fragmentation is memoized per node state (``Capacity.state_key``), and candidates are state classes, so
a placement costs O(distinct node states x options), not O(nodes).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from itertools import accumulate

from gpucommons.domain.job import Job, Placement
from gpucommons.policy.capacity import MILLI, Capacity, StateKey
from gpucommons.policy.placement.fit import share_milli
from gpucommons.policy.placement.scored import Score, ScoredPlacer, after

Shape = tuple[int, int, int, int, frozenset[str]]  # gpus, gpu milli, cpu milli, memory MiB, accepted models
PoolShape = tuple[float, int, int, int, int]  # weight, gpus, milli on this pool (0: no access), cpu, memory


def shape_of(job: Job) -> Shape:
    return (
        job.gpus,
        job.gpu_milli if job.shared else MILLI,
        job.cpu_milli,
        job.memory_mib,
        job.accepted_models,
    )


class FgdPlacer(ScoredPlacer):
    demand_weighted = False  # weight shapes by GPU milli requested instead of by count

    def __init__(self, workload: Iterable[Job] = ()) -> None:
        self._counts: dict[Shape, float] = {}
        self._mix: tuple[tuple[Shape, float], ...] = ()
        self._pool_mix: dict[int, tuple[PoolShape, ...]] = {}
        self._frag: dict[StateKey, float] = {}
        self._capacity: Capacity | None = None
        self.observe_workload(workload)

    # -- the request mix -------------------------------------------------------------------------
    def observe_workload(self, jobs: Iterable[Job]) -> None:
        """Set the mix to these jobs' shapes (GPU jobs only: CPU-only ones cannot fragment GPUs).

        The ATC'23 measure counts all of a node's free GPU milli as fragments for a CPU-only shape; that
        changes every candidate's score for a job by the same amount (``-weight x eff``, 0 for CPU-only
        jobs) and scales the other weights by one factor, so leaving such shapes out changes no choice.
        """
        counts: dict[Shape, float] = {}
        for job in jobs:
            if job.gpus > 0:
                shape = shape_of(job)
                counts[shape] = counts.get(shape, 0.0) + self._weight(shape)
        if counts != self._counts:
            self._counts = counts
            self._set_mix()

    @property
    def mix(self) -> tuple[tuple[Shape, float], ...]:
        """The request mix scored against: (shape, share), most frequent first."""
        return self._mix

    def _weight(self, shape: Shape) -> float:
        return shape[0] * shape[1] / MILLI if self.demand_weighted else 1.0

    def _set_mix(self) -> None:
        total = sum(self._counts.values())
        self._mix = (
            tuple((s, c / total) for s, c in sorted(self._counts.items(), key=lambda kv: -kv[1]))
            if total
            else ()
        )
        self._pool_mix = {}
        self._frag = {}

    def _shapes_for(self, pool: int) -> tuple[PoolShape, ...]:
        shapes = self._pool_mix.get(pool)
        if shapes is None:
            assert self._capacity is not None
            model = self._capacity.cluster.pools[pool].model
            out = []
            for (gpus, milli, cpu, mem, models), weight in self._mix:
                eff = share_milli(model, milli) if milli < MILLI else MILLI
                ok = eff is not None and (not models or model.name in models)
                out.append((weight, gpus, eff if ok and eff else 0, cpu, mem))
            shapes = self._pool_mix[pool] = tuple(out)
        return shapes

    # -- fragmentation ---------------------------------------------------------------------------
    def fragmentation(self, key: StateKey) -> float:
        """Expected free GPU milli the current mix could not use on a node in state ``key``."""
        value = self._frag.get(key)
        if value is None:
            value = self._frag[key] = self._compute(key)
        return value

    def _compute(self, key: StateKey) -> float:
        pool, cpu, mem, free = key
        left = sum(free)
        if left == 0:
            return 0.0
        prefix = (0, *accumulate(free))
        total = 0.0
        for weight, gpus, milli, need_cpu, need_mem in self._shapes_for(pool):
            if milli == 0 or need_cpu > cpu or need_mem > mem:
                total += weight * left
                continue
            small = bisect_left(free, milli)
            total += weight * (left if len(free) - small < gpus else prefix[small])
        return total

    # -- placement -------------------------------------------------------------------------------
    def bind(self, capacity: Capacity) -> None:
        """Score against ``capacity``'s cluster (memos are per cluster)."""
        if self._capacity is not capacity:
            self._capacity = capacity
            self._pool_mix = {}
            self._frag = {}

    def place(self, job: Job, capacity: Capacity) -> Placement | None:
        self.bind(capacity)
        return super().place(job, capacity)

    def score(self, key: StateKey, job: Job, eff: int, option: int) -> Score:
        return (self.fragmentation(after(key, job, eff, option)) - self.fragmentation(key),)
