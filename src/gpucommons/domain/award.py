"""Awards as the policy core sees them: what a tenant was granted, on which models, for how long.

An award guarantees ``guaranteed_gpus`` (after any reclaim) of its ``models`` (empty: any model)
between ``starts_s`` and ``ends_s``, and pays for at most ``gpu_hours_budget`` GPU-hours (``None``:
no budget limit) of which ``gpu_hours_used`` are spent. The live store builds these from award rows;
the simulator from a tenants file or scenario.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Award:
    id: int
    tenant: str
    guaranteed_gpus: int
    models: frozenset[str] = field(default_factory=frozenset)
    gpu_hours_budget: float | None = None
    gpu_hours_used: float = 0.0
    starts_s: float = -math.inf
    ends_s: float = math.inf

    def active_at(self, t_s: float) -> bool:
        return self.starts_s <= t_s < self.ends_s

    def pays_for(self, model: str) -> bool:
        return not self.models or model.lower() in {m.lower() for m in self.models}

    @property
    def remaining_gpu_hours(self) -> float:
        return math.inf if self.gpu_hours_budget is None else self.gpu_hours_budget - self.gpu_hours_used
