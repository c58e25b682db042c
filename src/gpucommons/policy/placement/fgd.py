"""FGD: Fragmentation Gradient Descent (Weng et al., USENIX ATC'23), as the paper's simulator runs it.

A node's fragmentation for one request shape is the free GPU milli that shape could not use there: all of
it when the shape cannot run on the node at all (model not accepted, too little CPU, too few GPUs with
room, or a CPU-only shape), otherwise the free milli on GPUs too small for the shape's per-GPU share.
Weighting shapes by how often they occur gives the node's *expected* fragmentation for the request mix;
FGD puts each job where that expectation grows least, choosing the GPU within the node the same way.

The paper's simulator (hkust-adsl/kubernetes-scheduler-simulator) fixes the details this module follows:

- The mix ("typical pods", ``pkg/utils/frag.go`` ``GetTypicalPods`` with the experiments' settings in
  ``scripts/generate_config_and_run.py``: ``isInvolvedCpuPods: true``, ``podPopularityThreshold: 95``):
  every pod of the workload counts once under its shape (CPU milli, GPU milli per GPU, GPU count, GPU
  model list; memory is no part of it), CPU-only pods included; shapes are ranked by count (ties: the
  larger CPU, GPU milli, GPU count, model list first, ``pkg/type/resource.go``) and the most popular
  ones covering 95 % of the pods are kept, their shares renormalised to 1.
- The measure (``NodeGpuShareFragAmount``, ``GetNodePodFrag``): CPU and GPUs only, no memory.
- The score (``pkg/simulator/plugin/fgd_score.go``): ``int64(sigmoid((F_before - F_after) / 1000) x
  100)``, an integer in [0, 100] with no normalisation step (the plugin has no ``ScoreExtensions``). A
  share's node score is the best of its GPUs', and the GPU taken is the first one (by device index) that
  reaches it; whole GPUs are the first free device indices.
- The tie-break: the simulator prefixes every node name with a random permutation index drawn from the
  run's seed (``pkg/simulator/simulator.go``, ``syncClusterResourceList``: ``rand.Perm``), and its
  Kubernetes fork picks, among the nodes with the top score, the smallest name "for reproducibility"
  (mental2008/kubernetes ``pkg/scheduler/core/generic_scheduler.go``, ``selectHost``). Ties are
  therefore broken by a fixed, seeded random order of the nodes. Integer scores tie often, so this
  decides many placements; taking the first node class instead spreads pods onto fresh nodes.

Here the node order is a permutation fixed by ``seed`` (``reseed``; the fill experiment passes its own
seed): nodes are ranked by a keyed hash (BLAKE2b) of their index, so results are reproducible for a
given seed without a random generator in the policy core; Go's generator itself is not reproduced.

The mix is an explicit input, never learned from ``place`` calls (a job retried every cycle would count
once per try, and decisions would depend on the process's history): ``observe_workload`` sets it. The
fill experiment and the replay hand over the whole trace up front, as the paper's simulator does; the
live engine hands over the jobs pending and running at each cycle. Memoized scores are dropped only when
the mix actually changes. Without a workload every node scores alike and the node order decides.

Fragmentation is memoized per node state (``Capacity.state_key``), and candidates are state classes, so
a placement costs O(distinct node states x options) plus the members of the top-scoring classes.
"""

from __future__ import annotations

import hashlib
import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from itertools import accumulate

from gpucommons.domain.job import Job, Placement
from gpucommons.policy.capacity import MILLI, Capacity, StateKey
from gpucommons.policy.placement.fit import gang, share_milli, usable_pools
from gpucommons.policy.placement.scored import Score, after, best_option

Shape = tuple[int, int, int, int, frozenset[str]]  # gpus, gpu milli, cpu milli, memory MiB, accepted models
PoolShape = tuple[float, int, int, int, int]  # weight, gpus, milli on this pool (0: no access), cpu, memory

MAX_SCORE = 100  # Kubernetes' framework.MaxNodeScore
POPULARITY_PCT = 95  # the experiments' podPopularityThreshold
DEFAULT_SEED = 0


def frag_score(gain_milli: float) -> int:
    """FGD's node score: ``int64(sigmoid(gain / 1000) x 100)`` with ``gain`` the fall of expected
    fragmentation in GPU milli (negative when it grows); 50 when nothing changes."""
    x = gain_milli / MILLI
    if x < -700.0:  # exp overflows; the sigmoid is 0 there
        return 0
    return int((1.0 / (1.0 + math.exp(-x))) * MAX_SCORE)


class FragmentationPlacer:
    """The request mix and FGD's expected fragmentation per node state, shared by FGD and FGD+.

    Class attributes choose how the mix is built: ``cpu_shapes`` keeps CPU-only jobs in it (they count all
    free GPU milli as fragment), ``host_memory`` keeps memory in the shapes (a node short of it cannot run
    the shape), ``popularity_pct`` keeps only the most popular shapes covering that share of the jobs.
    """

    demand_weighted = False  # weight shapes by GPU milli requested instead of by count
    cpu_shapes = False
    host_memory = True
    popularity_pct = 100

    def __init__(self, workload: Iterable[Job] = ()) -> None:
        self._counts: dict[Shape, float] = {}
        self._mix: tuple[tuple[Shape, float], ...] = ()
        self._pool_mix: dict[int, tuple[PoolShape, ...]] = {}
        self._frag: dict[StateKey, float] = {}
        self._capacity: Capacity | None = None
        self.observe_workload(workload)

    # -- the request mix -------------------------------------------------------------------------
    def observe_workload(self, jobs: Iterable[Job]) -> None:
        """Set the mix to these jobs' shapes (CPU-only jobs only when ``cpu_shapes``).

        Without ``cpu_shapes``: the ATC'23 measure counts all of a node's free GPU milli as fragments for
        a CPU-only shape; that changes every candidate's fragmentation growth for a job by the same amount
        (``-weight x eff``, 0 for CPU-only jobs) and scales the other weights by one factor, so leaving
        such shapes out changes no choice made on exact growth. FGD's integer score is not invariant to
        that shift, so FGD keeps them, as the paper's simulator does.
        """
        counts: dict[Shape, float] = {}
        for job in jobs:
            if job.gpus > 0 or self.cpu_shapes:
                shape = self.shape_of(job)
                counts[shape] = counts.get(shape, 0.0) + self._weight(shape)
        if counts != self._counts:
            self._counts = counts
            self._set_mix()

    def shape_of(self, job: Job) -> Shape:
        """A job's shape: GPU count, milli per GPU (0 for CPU-only jobs), CPU, memory (0 without
        ``host_memory``), accepted models."""
        memory = job.memory_mib if self.host_memory else 0
        if job.gpus == 0:
            return (0, 0, job.cpu_milli, memory, job.accepted_models)
        milli = job.gpu_milli if job.shared else MILLI
        return (job.gpus, milli, job.cpu_milli, memory, job.accepted_models)

    @property
    def mix(self) -> tuple[tuple[Shape, float], ...]:
        """The request mix scored against: (shape, share), most frequent first."""
        return self._mix

    def _weight(self, shape: Shape) -> float:
        return shape[0] * shape[1] / MILLI if self.demand_weighted else 1.0

    def _ranked(self) -> list[tuple[Shape, float]]:
        """Shapes by count, most frequent first (ties keep the order the shapes were met)."""
        return sorted(self._counts.items(), key=lambda kv: -kv[1])

    def _set_mix(self) -> None:
        ranked = self._ranked()
        total = sum(c for _, c in ranked)
        if self.popularity_pct < 100 and total:
            # GetTypicalPods: add shapes until they cover the threshold, then renormalise
            wanted = self.popularity_pct * total / 100.0
            covered = 0.0
            kept = 0
            while covered < wanted and kept < len(ranked):
                covered += ranked[kept][1]
                kept += 1
            ranked, total = ranked[:kept], covered
        self._mix = tuple((s, c / total) for s, c in ranked) if total else ()
        self._pool_mix = {}
        self._frag = {}

    def _shapes_for(self, pool: int) -> tuple[PoolShape, ...]:
        shapes = self._pool_mix.get(pool)
        if shapes is None:
            assert self._capacity is not None
            model = self._capacity.cluster.pools[pool].model
            out = []
            for (gpus, milli, cpu, mem, models), weight in self._mix:
                if gpus == 0:  # CPU-only: no GPU of the node is of use to it
                    out.append((weight, 0, 0, cpu, mem))
                    continue
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

    def bind(self, capacity: Capacity) -> None:
        """Score against ``capacity``'s cluster (memos are per cluster)."""
        if self._capacity is not capacity:
            self._capacity = capacity
            self._pool_mix = {}
            self._frag = {}


# One feasible node state: (state, share milli, FGD score per option); the node's score is the best one.
Candidate = tuple[StateKey, int, dict[int, int]]


class FgdPlacer(FragmentationPlacer):
    """FGD with the published integer score and seeded node-order tie-break (module docstring)."""

    cpu_shapes = True
    host_memory = False
    popularity_pct = POPULARITY_PCT

    def __init__(self, workload: Iterable[Job] = (), seed: int = DEFAULT_SEED) -> None:
        self._seed = seed
        self._rank: list[int] = []
        self._rank_nodes = -1
        super().__init__(workload)

    def _ranked(self) -> list[tuple[Shape, float]]:
        """By count, ties by the larger (CPU, GPU milli, GPU count, model list): the simulator's order."""

        def key(kv: tuple[Shape, float]) -> tuple[float, int, int, int, str]:
            (gpus, milli, cpu, _, models), count = kv
            return (count, cpu, milli, gpus, "|".join(sorted(models)))

        return sorted(self._counts.items(), key=key, reverse=True)

    # -- the node order --------------------------------------------------------------------------
    def reseed(self, seed: int) -> None:
        """Draw the node order from ``seed`` (the same seed gives the same placements)."""
        if seed != self._seed:
            self._seed = seed
            self._rank_nodes = -1

    @property
    def seed(self) -> int:
        return self._seed

    def rank(self, node: int) -> int:
        """The node's place in the seeded order: among equal scores the lowest rank wins."""
        assert self._capacity is not None
        self._ensure_rank(len(self._capacity.gpus_of))
        return self._rank[node]

    def _ensure_rank(self, nodes: int) -> None:
        """Rank the nodes by a keyed hash of their index: a random permutation fixed by the seed, with no
        generator state (the policy core draws no random numbers)."""
        if self._rank_nodes != nodes:
            seed = self._seed

            def draw(node: int) -> bytes:
                text = f"{seed}/{node}".encode()
                return hashlib.blake2b(text, digest_size=8, person=b"fgd-node-order").digest()

            rank = [0] * nodes
            for place, node in enumerate(sorted(range(nodes), key=draw)):
                rank[node] = place
            self._rank, self._rank_nodes = rank, nodes

    # -- scoring ---------------------------------------------------------------------------------
    def node_score(self, key: StateKey, job: Job, eff: int, option: int) -> int:
        """FGD's integer score of putting ``job`` on a node in state ``key`` (on a GPU with ``option``
        free milli for a share)."""
        return frag_score(self.fragmentation(key) - self.fragmentation(after(key, job, eff, option)))

    def candidates(self, job: Job, capacity: Capacity) -> list[Candidate]:
        """Every feasible node state with its FGD score per option, in class order."""
        seen: dict[StateKey, tuple[int, dict[int, int]]] = {}

        def record(key: StateKey, job: Job, eff: int, option: int) -> Score:
            entry = seen.get(key)
            if entry is None:
                entry = seen[key] = (eff, {})
            entry[1][option] = self.node_score(key, job, eff, option)
            return (0.0,)

        best_option(capacity, job, record)
        return [(key, eff, scores) for key, (eff, scores) in seen.items()]

    def totals(self, job: Job, candidates: Sequence[Candidate]) -> list[int]:
        """The score each candidate is ranked by (higher wins): FGD's node score."""
        return [max(scores.values()) for _, _, scores in candidates]

    # -- placement -------------------------------------------------------------------------------
    def bind(self, capacity: Capacity) -> None:
        super().bind(capacity)
        self._ensure_rank(len(capacity.gpus_of))

    def place(self, job: Job, capacity: Capacity) -> Placement | None:
        self.bind(capacity)
        if job.gpus == 0 and not (job.cpu_milli or job.memory_mib):
            return None
        if job.shared or job.gpus_per_node in (None, job.gpus):
            placement = self._place_single(job, capacity)
            if placement is not None or job.shared or job.gpus_per_node is not None:
                return placement
        pools = tuple(p for p, _ in usable_pools(job, capacity.cluster))
        return gang(capacity, job, pools) if job.gpus > 0 else None

    def _place_single(self, job: Job, capacity: Capacity) -> Placement | None:
        found = self.candidates(job, capacity)
        if not found:
            return None
        totals = self.totals(job, found)
        top = max(totals)
        classes = capacity.classes()
        rank = self._rank
        node, chosen = -1, found[0]
        for candidate, total in zip(found, totals, strict=True):
            if total == top:
                first = min(classes[candidate[0]], key=rank.__getitem__)
                if node < 0 or rank[first] < rank[node]:
                    node, chosen = first, candidate
        _, eff, scores = chosen
        if job.shared:
            best = max(scores.values())
            gpu = next(
                g
                for g in range(capacity.gpus_of[node])
                if (free := capacity.gpu_free_milli(node, g)) >= eff and scores.get(free) == best
            )
            capacity.allocate_share(node, gpu, eff, job.cpu_milli, job.memory_mib)
            return Placement(((node, (gpu,)),), milli=eff, cpu_milli=job.cpu_milli, memory_mib=job.memory_mib)
        gpus = capacity.allocate(node, job.gpus, job.cpu_milli, job.memory_mib)
        return Placement(((node, gpus),), cpu_milli=job.cpu_milli, memory_mib=job.memory_mib)
