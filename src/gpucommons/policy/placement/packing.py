"""Packing: fill the most-used node first (the GpuPacking baseline of the FGD paper).

Shares go to GPUs that already hold shares before touching a wholly free GPU, and among nodes the one
with the least free GPU milli left wins: work is concentrated so empty nodes stay empty for big jobs.
"""

from __future__ import annotations

from gpucommons.domain.job import Job
from gpucommons.policy.capacity import MILLI, StateKey
from gpucommons.policy.placement.scored import Score, ScoredPlacer


class PackingPlacer(ScoredPlacer):
    def score(self, key: StateKey, job: Job, eff: int, option: int) -> Score:
        fresh_gpu = 1 if option == MILLI else 0
        node_free = sum(key[3])
        return (float(fresh_gpu), float(node_free), float(option))
