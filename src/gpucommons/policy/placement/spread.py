"""Spread (worst fit): the node with the most free GPU milli, then the most free CPU.

Useful for load balancing and as the opposite baseline to packing; it fragments on purpose.
"""

from __future__ import annotations

from gpucommons.domain.job import Job
from gpucommons.policy.capacity import StateKey
from gpucommons.policy.placement.scored import Score, ScoredPlacer


class SpreadPlacer(ScoredPlacer):
    def score(self, key: StateKey, job: Job, eff: int, option: int) -> Score:
        return (-float(sum(key[3])), -float(key[1]), -float(option))
