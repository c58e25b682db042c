"""FGD+: fragmentation gradient descent that also counts GPUs stranded by CPU and memory.

FGD (``fgd.py``) asks, per request shape, whether *one more* pod of that shape fits on a node; a node with
8 free GPUs and CPU for 3 more pods therefore looks unfragmented, although 5 of its GPUs can never be
used by that shape. On openb most idle GPUs at the end of the fill experiment sit on exactly such nodes:
8-GPU nodes with 12 cores per GPU whose CPU ran out first, while CPU-rich nodes (52 cores per GPU) kept
CPU to spare.

FGD+ replaces the per-shape test with a *fill* test: if the node were filled with pods of shape ``m``
only, how much of its free GPU milli would stay unused? That is the free milli minus what ``n_m`` pods
use, where ``n_m`` is the smallest of the GPU-side count (shares: whole slices per GPU; whole-GPU pods:
free GPUs / GPUs per pod), the CPU-side count and the memory-side count. It equals FGD's measure when
only one pod fits and the GPU side binds, and it charges CPU-hungry pods on CPU-poor nodes (and CPU-only
pods that eat CPU next to idle GPUs) with the GPUs they strand. Among equal scores, the node left with
the least free GPU milli wins (packing), which keeps empty nodes whole for multi-GPU pods.
"""

from __future__ import annotations

from gpucommons.domain.job import Job
from gpucommons.policy.capacity import MILLI, StateKey
from gpucommons.policy.placement.fgd import FgdPlacer
from gpucommons.policy.placement.scored import Score, after


class FgdPlusPlacer(FgdPlacer):
    def _compute(self, key: StateKey) -> float:
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

    def score(self, key: StateKey, job: Job, eff: int, option: int) -> Score:
        new = after(key, job, eff, option)
        delta = self.fragmentation(new) - self.fragmentation(key)
        return (round(delta, 3), float(sum(new[3])), float(new[1]))
