"""Meter one run segment: from (model, GPUs, seconds, site, pricing) to GPU-hours, energy, cost, CO2
and training FLOPs.

A segment is one uninterrupted stretch a job held its GPUs (a preempted job has several). Formulas:

- ``gpu_hours = gpus * duration_s / 3600``
- ``energy_kwh = tdp_w * gpus * hours * site.pue / 1000`` (IT load at TDP times the site's PUE), unless
  a measured figure is given;
- ``cost_krw = gpu_hours * price_krw_per_gpu_hour * (1 - discount)`` where the discount comes from the
  institution kind (free for universities and research institutes) and youth startups get a further 50 %
  off what remains;
- ``co2_kg = energy_kwh * site.carbon_g_per_kwh / 1000``;
- ``flops = gpu_hours * 3600 * bf16_tflops * 1e12 * utilization`` (see ``ASSUMED_UTILIZATION``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from gpucommons.domain.accelerators import AcceleratorModel
from gpucommons.domain.cluster import Site

ASSUMED_UTILIZATION = 0.4
"""Fraction of the BF16 dense peak a training job sustains (model FLOPs utilization). Large LLM
training runs report 35-45 % MFU on H100-class parts; 0.4 is the middle of that range. It turns
GPU-hours into training compute for the AI Basic Act's 10^26 FLOPs threshold when a job reports no
measured figure of its own."""

DEFAULT_DISCOUNTS: Mapping[str, float] = MappingProxyType(
    {
        "university": 1.0,
        "research_institute": 1.0,
        "public_agency": 0.0,
        "startup": 0.5,
        "sme": 0.3,
        "consortium": 0.0,
        "enterprise": 0.0,
    }
)
"""Fraction of the price waived per institution kind, when a program sets none of its own: academia
and research institutes pay nothing, startups and SMEs get a reduced rate."""

YOUTH_STARTUP_EXTRA_DISCOUNT = 0.5
"""Youth startups get a further 50 % off what a startup would pay."""

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True)
class Pricing:
    """A program's price, its discounts per institution kind (fraction waived, 0..1) and the extra
    fraction youth startups get off what remains."""

    price_krw_per_gpu_hour: float
    discounts: Mapping[str, float] = field(default_factory=lambda: DEFAULT_DISCOUNTS)
    youth_extra_discount: float = YOUTH_STARTUP_EXTRA_DISCOUNT


@dataclass(frozen=True, slots=True)
class SegmentUsage:
    """What one run segment consumed, in the units the ledger and reports use."""

    model: str
    gpu_hours: float
    energy_kwh: float
    cost_krw: float
    co2_kg: float
    flops: float


def discount_for(pricing: Pricing, institution_kind: str, youth: bool = False) -> float:
    """Fraction of the price waived for an institution of ``institution_kind`` (0 = full price)."""
    kind = institution_kind.lower().replace("-", "_")
    if kind == "youth_startup":
        kind, youth = "startup", True
    base = min(1.0, max(0.0, pricing.discounts.get(kind, 0.0)))
    if youth:
        return base + (1.0 - base) * min(1.0, max(0.0, pricing.youth_extra_discount))
    return base


def meter_segment(
    model: AcceleratorModel,
    gpus: int,
    duration_s: float,
    site: Site,
    pricing: Pricing,
    institution_kind: str,
    youth: bool = False,
    measured_kwh: float | None = None,
    utilization: float = ASSUMED_UTILIZATION,
) -> SegmentUsage:
    """Meter ``gpus`` accelerators of ``model`` held for ``duration_s`` seconds at ``site``."""
    hours = max(0.0, duration_s) / SECONDS_PER_HOUR
    gpu_hours = gpus * hours
    energy_kwh = measured_kwh if measured_kwh is not None else model.tdp_w * gpu_hours * site.pue / 1000.0
    cost_krw = (
        gpu_hours * pricing.price_krw_per_gpu_hour * (1.0 - discount_for(pricing, institution_kind, youth))
    )
    return SegmentUsage(
        model=model.name,
        gpu_hours=gpu_hours,
        energy_kwh=energy_kwh,
        cost_krw=cost_krw,
        co2_kg=energy_kwh * site.carbon_g_per_kwh / 1000.0,
        flops=gpu_hours * SECONDS_PER_HOUR * model.bf16_tflops * 1e12 * utilization,
    )
