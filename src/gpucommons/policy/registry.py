"""Explicit name -> factory maps for every pluggable piece. Only the edges (CLI, service, benchmarks)
look names up; the core receives built objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gpucommons.errors import UnknownNameError
from gpucommons.policy.discipline import EasyBackfill, SkipAhead, StrictLine
from gpucommons.policy.ordering.fairshare import MultifactorOrdering
from gpucommons.policy.ordering.fifo import FifoOrdering
from gpucommons.policy.ordering.las import LasOrdering, LasPreemptor
from gpucommons.policy.placement.best_fit import BestFitPlacer
from gpucommons.policy.placement.fgd import FgdPlacer
from gpucommons.policy.placement.fgd_plus import FgdPlusPlacer
from gpucommons.policy.placement.first_fit import FirstFitPlacer
from gpucommons.policy.placement.packing import PackingPlacer
from gpucommons.policy.placement.spread import SpreadPlacer
from gpucommons.policy.protocols import Placer, PolicyConfig
from gpucommons.policy.quota import QuotaAdmission, ReclaimPreemptor

PLACERS: dict[str, Callable[[], Placer]] = {
    "first-fit": FirstFitPlacer,
    "best-fit": BestFitPlacer,
    "packing": PackingPlacer,
    "spread": SpreadPlacer,
    "fgd": FgdPlacer,
    "fgd-plus": FgdPlusPlacer,
}


def _fifo(placer: Placer) -> PolicyConfig:
    return PolicyConfig("fifo", FifoOrdering(), StrictLine(), placer)


def _backfill(placer: Placer) -> PolicyConfig:
    return PolicyConfig("backfill", FifoOrdering(), EasyBackfill(), placer)


def _fairshare(placer: Placer) -> PolicyConfig:
    return PolicyConfig("fairshare", MultifactorOrdering(), EasyBackfill(), placer)


def _las(placer: Placer) -> PolicyConfig:
    return PolicyConfig("las", LasOrdering(), SkipAhead(), placer, preemptor=LasPreemptor())


def _quota(placer: Placer) -> PolicyConfig:
    return PolicyConfig(
        "quota", FifoOrdering(), SkipAhead(), placer, admission=QuotaAdmission(), preemptor=ReclaimPreemptor()
    )


POLICIES: dict[str, Callable[[Placer], PolicyConfig]] = {
    "fifo": _fifo,
    "backfill": _backfill,
    "fairshare": _fairshare,
    "las": _las,
    "quota": _quota,
}


def _lookup(table: dict[str, Any], kind: str, name: str) -> Any:
    try:
        return table[name]
    except KeyError:
        raise UnknownNameError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}") from None


def build_placer(name: str) -> Placer:
    factory: Callable[[], Placer] = _lookup(PLACERS, "placer", name)
    return factory()


def build_policy(name: str, placer: str = "best-fit") -> PolicyConfig:
    """The named policy with the named placer, e.g. ``build_policy("las", placer="best-fit")``."""
    factory: Callable[[Placer], PolicyConfig] = _lookup(POLICIES, "policy", name)
    return factory(build_placer(placer))
