"""How fast each kind of job runs on each accelerator model: the work model (design note 0009).

A job's work is its run time on the table's ``reference`` model; on another model it runs at
``speed(job_class, model)`` times that pace. The shipped throughputs (``DEFAULT_THROUGHPUT``) are
relative to an A100 and come from ``docs/DOMAIN-FACTS.md`` section 1c; where a class has no entry for a
model, the catalog's ``relative_speed`` (also A100 = 1) stands in. Entries marked ``(U)`` are vendor
claims or unverified aggregates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gpucommons.domain.accelerators import CATALOG
from gpucommons.errors import InvalidRequestError

JOB_CLASSES = ("llm-pretrain", "llm-finetune", "vision", "inference")
DEFAULT_CLASS = "llm-pretrain"


@dataclass(frozen=True, slots=True)
class Throughput:
    """One entry of the shipped table: throughput relative to an A100, and where the figure comes from."""

    relative_to_a100: float
    source: str


DEFAULT_THROUGHPUT: Mapping[str, Mapping[str, Throughput]] = MappingProxyType(
    {
        "llm-pretrain": {
            "H100": Throughput(2.0, "MLPerf Training v3.0: 1.4-2.0x A100 (DOMAIN-FACTS 1c [S32])"),
            "H200": Throughput(2.0, "training ~= H100, same compute (DOMAIN-FACTS 1c, assumption)"),
            "B200": Throughput(4.0, "MLPerf Training v4.1 GPT-3 175B: 2.0x H100 (1c [S37])"),
            "GB200": Throughput(6.0, "~3x H100 projected (1c [S38]) (U)"),
            "MI300X": Throughput(2.0, "~= H100 (1c [S40][S41]) (U)"),
        },
        "llm-finetune": {
            "H100": Throughput(2.0, "MLPerf Training v3.0: up to 2.0x A100 (1c [S32])"),
            "H200": Throughput(2.0, "training ~= H100 (1c, assumption)"),
            "B200": Throughput(4.4, "MLPerf Training v4.1 Llama-2-70B LoRA: 2.2x H100 (1c [S37])"),
            "MI300X": Throughput(2.0, "~= H100 (1c [S40][S41]) (U)"),
        },
        "vision": {
            "H100": Throughput(
                1.6, "MLPerf Training v3.0: 1.4x (3D-UNet) to 1.8x (ResNet-50) A100 (1c [S32])"
            ),
            "H200": Throughput(1.6, "training ~= H100 (1c, assumption)"),
            "B200": Throughput(3.2, "2.0x H100 (MLPerf Training v4.1, LLM figure applied) (1c [S37]) (U)"),
        },
        "inference": {
            "H100": Throughput(2.0, "MLPerf Inference v2.1: 1.5-2.5x A100 on most benchmarks (1c [S33])"),
            "H200": Throughput(2.8, "1.4x H100 on Llama-2-70B, MLPerf Inference v4.x (1c [S34][S35])"),
            "B200": Throughput(8.0, "up to 4x H100 (FP4), MLPerf Inference v4.1 (1c [S37]) (U)"),
            "GB200": Throughput(
                8.0, ">3x H200 per GPU on Llama-3.1-405B, MLPerf Inference v5.0 (1c [S39]) (U)"
            ),
            "MI300X": Throughput(
                2.0, "within 2-4 % of H100 on Llama-2-70B, MLPerf Inference v4.1 (1c [S40])"
            ),
            "L40S": Throughput(0.46, "0.23x H100 on Llama-3.1-8B, vendor benchmark (1c [S17]) (U)"),
            "RNGD": Throughput(0.76, "0.30x (8B) to 0.46x (70B) H100, vendor benchmark (1c [S17]) (U)"),
            "REBEL100": Throughput(2.8, "about an H200, vendor claim (1c [S22]) (U)"),
        },
    }
)


@dataclass(frozen=True)
class SpeedTable:
    """Throughput per job class and model, relative to ``reference`` (whose speed is 1 for every
    class). ``overrides``: class -> model -> speed relative to the reference, as a cluster file states
    them; everything else is the shipped table (``DEFAULT_THROUGHPUT``) renormalised to the reference."""

    reference: str = "A100"
    default_class: str = DEFAULT_CLASS
    overrides: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # Each model's speed where the shipped table has none (A100 = 1): the catalog's, plus a cluster
    # file's own models.
    relative_speeds: Mapping[str, float] = field(
        default_factory=lambda: {name: m.relative_speed for name, m in CATALOG.items()}
    )
    _cache: dict[tuple[str, str], float] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.reference not in self.relative_speeds:
            raise InvalidRequestError(f"speeds: unknown reference model {self.reference!r}")
        _check_class(self.default_class, "default_class")
        for job_class, speeds in self.overrides.items():
            _check_class(job_class, f"speeds.{job_class}")
            for model, speed in speeds.items():
                if model not in self.relative_speeds:
                    raise InvalidRequestError(f"speeds.{job_class}: unknown model {model!r}")
                if not (math.isfinite(speed) and speed > 0):
                    raise InvalidRequestError(f"speeds.{job_class}.{model}: need a speed > 0, got {speed!r}")
                if model == self.reference and speed != 1.0:
                    raise InvalidRequestError(
                        f"speeds.{job_class}.{model}: the reference runs at 1 by definition, got {speed!r}"
                    )

    def speed(self, job_class: str, model: str) -> float:
        """How many reference-seconds of work a job of ``job_class`` does per second on ``model``."""
        key = (job_class or self.default_class, model)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._cache[key] = self._speed(*key)
        return cached

    def _speed(self, job_class: str, model: str) -> float:
        stated = self.overrides.get(job_class, {}).get(model)
        if stated is not None:
            return stated
        return self._throughput(job_class, model) / self._throughput(job_class, self.reference)

    def _throughput(self, job_class: str, model: str) -> float:
        entry = DEFAULT_THROUGHPUT.get(job_class, {}).get(model)
        if entry is not None:
            return entry.relative_to_a100
        known = self.relative_speeds.get(model)
        if known is None:
            raise InvalidRequestError(f"speeds: unknown model {model!r}")
        return known


def _check_class(job_class: str, where: str) -> None:
    if job_class not in JOB_CLASSES:
        raise InvalidRequestError(
            f"{where}: unknown job class {job_class!r}; known: {', '.join(JOB_CLASSES)}"
        )
