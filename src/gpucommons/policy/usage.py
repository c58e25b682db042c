"""Decayed usage per tenant (Slurm's ``PriorityDecayHalfLife``), as exact closed-form math.

Usage decays by half every ``half_life_s``. While a tenant holds ``r`` GPUs, usage grows at ``r`` GPU-s
per second; integrating growth under decay over ``dt`` gives ``r * tau * (1 - d)`` with
``tau = half_life / ln 2`` and ``d = 2^(-dt / half_life)``. Both stores (simulated and live) keep one
``UsageLedger`` and update it whenever a tenant's GPU count changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class UsageLedger:
    half_life_s: float = 7 * 86_400.0
    _value: dict[str, float] = field(default_factory=dict)
    _rate_gpus: dict[str, int] = field(default_factory=dict)
    _at_s: dict[str, float] = field(default_factory=dict)

    def _advanced(self, tenant: str, now: float) -> float:
        value = self._value.get(tenant, 0.0)
        dt = now - self._at_s.get(tenant, now)
        if dt <= 0:
            return value
        decay = math.pow(2.0, -dt / self.half_life_s)
        tau = self.half_life_s / math.log(2.0)
        return value * decay + self._rate_gpus.get(tenant, 0) * tau * (1.0 - decay)

    def change(self, tenant: str, delta_gpus: int, now: float) -> None:
        """The tenant now holds ``delta_gpus`` more (or fewer) GPUs, from ``now`` on."""
        self._value[tenant] = self._advanced(tenant, now)
        self._at_s[tenant] = now
        self._rate_gpus[tenant] = self._rate_gpus.get(tenant, 0) + delta_gpus

    def values(self, now: float) -> dict[str, float]:
        return {t: self._advanced(t, now) for t in self._value}
