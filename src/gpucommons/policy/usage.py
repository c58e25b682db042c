"""Decayed usage per tenant (Slurm's ``PriorityDecayHalfLife``), as exact closed-form math.

Usage decays by half every ``half_life_s``. While a tenant holds ``r`` GPUs, usage grows at ``r`` GPU-s
per second; integrating growth under decay over ``dt`` gives ``r * tau * (1 - d)`` with
``tau = half_life / ln 2`` and ``d = 2^(-dt / half_life)``. Both stores (simulated and live) keep one
``UsageLedger`` and update it whenever a tenant's GPU count changes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
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

    def at(self, now: float) -> Mapping[str, float]:
        """Every tenant's usage at ``now``, each figure computed when first read: most policies
        never read usage, and a replay builds one snapshot per cycle. Valid while the ledger is
        unchanged after ``now`` (the cycle that asked for it)."""
        return _UsageAt(self, now)


class _UsageAt(Mapping[str, float]):
    __slots__ = ("_known", "_ledger", "_now")

    def __init__(self, ledger: UsageLedger, now: float) -> None:
        self._ledger = ledger
        self._now = now
        self._known: dict[str, float] = {}

    def __getitem__(self, tenant: str) -> float:
        value = self._known.get(tenant)
        if value is None:
            if tenant not in self._ledger._value:
                raise KeyError(tenant)
            value = self._known[tenant] = self._ledger._advanced(tenant, self._now)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._ledger._value)

    def __len__(self) -> int:
        return len(self._ledger._value)
