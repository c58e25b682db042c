"""FGD+: fragmentation gradient descent that also counts GPUs stranded by CPU and memory.

FGD (``fgd.py``) asks, per request shape, whether *one more* pod of that shape fits on a node; a node with
8 free GPUs and CPU for 3 more pods therefore looks unfragmented, although 5 of its GPUs can never be
used by that shape. On openb most idle GPUs at the end of the fill experiment sit on exactly such nodes:
8-GPU nodes with 12 cores per GPU whose CPU ran out first, while CPU-rich nodes (52 cores per GPU) kept
CPU to spare.

FGD+ scores a node state with two terms, both in GPU milli:

- *Fill test* (per shape): if the node were filled with pods of shape ``m`` only, how much of its free
  GPU milli would stay unused? That is the free milli minus what ``n_m`` pods use, where ``n_m`` is the
  smallest of the GPU-side count (shares: whole slices per GPU; whole-GPU pods: free GPUs / GPUs per
  pod), the CPU-side count and the memory-side count. It equals FGD's measure when only one pod fits and
  the GPU side binds, and it charges CPU-hungry pods on CPU-poor nodes with the GPUs they strand. Weighted
  by the mix like FGD.
- *Balance* (whole mix): the mix as a whole needs, on average, ``c`` CPU milli and ``m`` MiB for every
  ``g`` GPU milli. A node whose free CPU (or memory) is short of that ratio can use at most
  ``cpu * g / c`` (``mem * g / m``) of its free GPU milli; the rest is stranded. The fill test alone
  misses this: once a node's last GPU is lost to the CPU-hungry shapes, a further CPU-hungry pod there
  costs nothing for those shapes, so such pods keep draining CPU-poor nodes that CPU-light shapes (e.g.
  openb's 0.81-GPU pods with 3 cores) could have filled. The balance term charges every loss of CPU per
  free GPU below the mix's ratio, which steers CPU-light pods to CPU-poor nodes, CPU-heavy and CPU-only
  pods to CPU-rich ones. It is weighted ``balance_weight`` times the fill test: balance comes first,
  the fill test ranks nodes that balance equally.

Unlike FGD (``fgd.py``, which follows the paper's integer score and seeded node-order tie-break), FGD+
keeps exact float scores over the GPU jobs' shapes with their memory, and among equal scores the node
left with the least free GPU milli wins (packing), which keeps empty nodes whole for multi-GPU pods.
Both terms depend on the node state only, so they are memoized per state like FGD's and a placement
still costs O(distinct node states).
"""

from __future__ import annotations

from gpucommons.domain.job import Job, Placement
from gpucommons.policy.capacity import MILLI, Capacity, StateKey
from gpucommons.policy.placement.fgd import FragmentationPlacer
from gpucommons.policy.placement.scored import Score, ScoredPlacer, after

INF = float("inf")


class FgdPlusPlacer(FragmentationPlacer, ScoredPlacer):
    balance_weight = 20.0  # balance term vs fill test (on openb, 8 to 1000 agree within 0.02 points)

    def __init__(self) -> None:
        super().__init__()
        self._balance: dict[int, tuple[float, float]] = {}

    # -- the mix's CPU and memory per GPU --------------------------------------------------------
    def _set_mix(self) -> None:
        super()._set_mix()
        self._balance = {}

    def bind(self, capacity: Capacity) -> None:
        if self._capacity is not capacity:
            self._balance = {}
        super().bind(capacity)

    def gpu_per_host(self, pool: int) -> tuple[float, float]:
        """GPU milli the mix uses per CPU milli and per MiB of memory on ``pool`` (``inf``: no limit).

        Only shapes that can run on the pool count, each weighted like the fill test.
        """
        ratios = self._balance.get(pool)
        if ratios is None:
            gpu = cpu = mem = 0.0
            for weight, gpus, milli, need_cpu, need_mem in self._shapes_for(pool):
                if milli:
                    gpu += weight * gpus * milli
                    cpu += weight * need_cpu
                    mem += weight * need_mem
            ratios = self._balance[pool] = (gpu / cpu if cpu else INF, gpu / mem if mem else INF)
        return ratios

    def stranded(self, key: StateKey) -> float:
        """Free GPU milli of a node in state ``key`` beyond what its free CPU and memory can feed at the
        mix's average CPU and memory per GPU."""
        pool, cpu, mem, free = key
        left = sum(free)
        if left == 0:
            return 0.0
        per_cpu, per_mem = self.gpu_per_host(pool)
        return max(0.0, left - min(cpu * per_cpu, mem * per_mem))

    # -- fragmentation ---------------------------------------------------------------------------
    def fill_waste(self, key: StateKey) -> float:
        """Expected free GPU milli left unused if the node were filled with pods of one mix shape."""
        pool, cpu, mem, free = key
        left = sum(free)
        if left == 0:
            return 0.0
        whole = free.count(MILLI)
        total = 0.0
        for weight, gpus, milli, need_cpu, need_mem in self._shapes_for(pool):
            if milli == 0:
                total += weight * left
                continue
            if milli < MILLI:
                fit = sum(v // milli for v in free)
                per_pod = milli
            else:
                fit = whole // gpus
                per_pod = gpus * MILLI
            if need_cpu:
                fit = min(fit, cpu // need_cpu)
            if need_mem:
                fit = min(fit, mem // need_mem)
            total += weight * (left - fit * per_pod)
        return total

    def _compute(self, key: StateKey) -> float:
        if not key[3] or not any(key[3]):
            return 0.0
        return self.fill_waste(key) + self.balance_weight * self.stranded(key)

    def place(self, job: Job, capacity: Capacity) -> Placement | None:
        self.bind(capacity)
        return ScoredPlacer.place(self, job, capacity)

    def score(self, key: StateKey, job: Job, eff: int, option: int) -> Score:
        new = after(key, job, eff, option)
        delta = self.fragmentation(new) - self.fragmentation(key)
        return (round(delta, 3), float(sum(new[3])), float(new[1]))
