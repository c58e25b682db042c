"""Explicit name -> factory maps for every pluggable piece. Only the edges (CLI, service, benchmarks)
look names up; the core receives built objects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from gpucommons.errors import UnknownNameError
from gpucommons.policy.constraints import Commons
from gpucommons.policy.constraints.arrays import ArrayLimitStage
from gpucommons.policy.constraints.award import AwardStage
from gpucommons.policy.constraints.gangs import EvenGangStage
from gpucommons.policy.constraints.power import PowerStage
from gpucommons.policy.constraints.reservations import ReservationStage
from gpucommons.policy.constraints.residency import ResidencyStage
from gpucommons.policy.constraints.siting import SitingStage
from gpucommons.policy.constraints.speed import SpeedStage
from gpucommons.policy.discipline import EasyBackfill, SkipAhead, StrictLine
from gpucommons.policy.ordering.fairshare import MultifactorOrdering
from gpucommons.policy.ordering.fifo import FifoOrdering
from gpucommons.policy.ordering.las import LasOrdering, LasPreemptor
from gpucommons.policy.placement.best_fit import BestFitPlacer
from gpucommons.policy.placement.fgd import FgdPlacer
from gpucommons.policy.placement.fgd_plus import FgdPlusPlacer
from gpucommons.policy.placement.first_fit import FirstFitPlacer
from gpucommons.policy.placement.packing import PackingPlacer
from gpucommons.policy.placement.pwr import FgdPwrPlacer, PwrPlacer
from gpucommons.policy.placement.spread import SpreadPlacer
from gpucommons.policy.protocols import Placer, PolicyConfig, Stage
from gpucommons.policy.quota import QuotaStage, ReclaimPreemptor

PLACERS: dict[str, Callable[[], Placer]] = {
    "first-fit": FirstFitPlacer,
    "best-fit": BestFitPlacer,
    "packing": PackingPlacer,
    "spread": SpreadPlacer,
    "fgd": FgdPlacer,
    "fgd-plus": FgdPlusPlacer,
    "pwr": PwrPlacer,
    "fgd-pwr": FgdPwrPlacer,
}


def _fifo(placer: Placer) -> PolicyConfig:
    return PolicyConfig("fifo", FifoOrdering(), StrictLine(), placer)


def _backfill(placer: Placer) -> PolicyConfig:
    return PolicyConfig("backfill", FifoOrdering(), EasyBackfill(), placer)


def _fairshare(placer: Placer) -> PolicyConfig:
    return PolicyConfig("fairshare", MultifactorOrdering(), EasyBackfill(), placer)


def _las(placer: Placer) -> PolicyConfig:
    return PolicyConfig("las", LasOrdering(), SkipAhead(), placer, preemptor=LasPreemptor())


def _hetero(placer: Placer) -> PolicyConfig:
    """LAS with each job sent to the model where it finishes first (design note 0009)."""
    return PolicyConfig(
        "hetero", LasOrdering(), SkipAhead(), placer, stages=(SpeedStage(),), preemptor=LasPreemptor()
    )


def _quota(placer: Placer) -> PolicyConfig:
    return PolicyConfig(
        "quota", FifoOrdering(), SkipAhead(), placer, stages=(QuotaStage(),), preemptor=ReclaimPreemptor()
    )


POLICIES: dict[str, Callable[[Placer], PolicyConfig]] = {
    "fifo": _fifo,
    "backfill": _backfill,
    "fairshare": _fairshare,
    "las": _las,
    "quota": _quota,
    "hetero": _hetero,
}


def _lookup(table: dict[str, Any], kind: str, name: str) -> Any:
    try:
        return table[name]
    except KeyError:
        raise UnknownNameError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}") from None


def build_placer(name: str) -> Placer:
    factory: Callable[[], Placer] = _lookup(PLACERS, "placer", name)
    return factory()


def commons_stages(base: tuple[Stage, ...], commons: Commons) -> tuple[Stage, ...]:
    """The admission stages of a policy under ``commons``, in the order they run: award (narrows
    models), residency (narrows sites), even gangs (fixes the shape), array limit (a job array's
    running tasks), quota (guarantees, borrowing), power (narrows sites by headroom; checks the
    placement), siting (orders the sites left), reservations (keeps jobs off held nodes)."""
    stages: list[Stage] = []
    if commons.awards:
        stages.append(AwardStage())
    if commons.residency:
        stages.append(ResidencyStage())
    if commons.even_gangs:
        stages.append(EvenGangStage())
    if commons.arrays:
        stages.append(ArrayLimitStage())
    quota = [s for s in base if isinstance(s, QuotaStage)]
    if quota:
        stages.extend(
            QuotaStage(commons.borrowing and q.allow_borrowing, q.borrowing_limit_gpus) for q in quota
        )
    elif not commons.borrowing:
        stages.append(QuotaStage(allow_borrowing=False))
    stages.extend(s for s in base if not isinstance(s, QuotaStage))
    if commons.power:
        stages.append(PowerStage(commons.power_model, commons.power_preempt))
    if commons.siting:
        stages.append(SitingStage(commons.power_model))
    if commons.reservations:
        stages.append(ReservationStage(commons.checkpoint_aware))
    return tuple(stages)


def build_policy(name: str, placer: str = "best-fit", commons: Commons | None = None) -> PolicyConfig:
    """The named policy with the named placer under the commons' rules, e.g.
    ``build_policy("las", "best-fit", Commons(awards=True, borrowing=False))``."""
    factory: Callable[[Placer], PolicyConfig] = _lookup(POLICIES, "policy", name)
    config = factory(build_placer(placer))
    commons = commons or Commons()
    config = replace(config, stages=commons_stages(config.stages, commons))
    if not commons.checkpoint_aware:
        return config
    preemptor = config.preemptor
    if isinstance(preemptor, LasPreemptor | ReclaimPreemptor):
        preemptor = replace(preemptor, checkpoint_aware=True)
    return replace(config, preemptor=preemptor, checkpoint_aware=True)
