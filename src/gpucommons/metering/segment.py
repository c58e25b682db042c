"""Meter one run segment: from (model, GPUs, time held, site, rate) to GPU-hours, energy, won, CO2 and
training FLOPs.

A segment is one uninterrupted stretch a job held its GPUs (a preempted job has several). Formulas:

- ``gpu_hours = gpus * held_s / 3600``
- ``energy_kwh = tdp_w * gpus * hours * site.pue / 1000`` (IT load at TDP times the site's PUE), unless
  a measured figure is given;
- ``cost_krw``: whole won from ``pricing.charge_krw`` (the payer's rate after the program's discounts,
  rounded by the commons' one rule, so a job's segments add up to the quote of its whole GPU time);
- ``co2_kg = energy_kwh * site.carbon_g_per_kwh / 1000``;
- ``flops = gpu_hours * 3600 * bf16_tflops * 1e12 * utilization`` (see ``ASSUMED_UTILIZATION``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction

from gpucommons.domain.accelerators import AcceleratorModel
from gpucommons.domain.cluster import Site
from gpucommons.metering.pricing import SECONDS_PER_HOUR, Rate, charge_krw, gpu_seconds

ASSUMED_UTILIZATION = 0.4
"""Fraction of the BF16 dense peak a training job sustains (model FLOPs utilization). Large LLM
training runs report 35-45 % MFU on H100-class parts; 0.4 is the middle of that range. It turns
GPU-hours into training compute for the AI Basic Act's 10^26 FLOPs threshold when a job reports no
measured figure of its own."""


@dataclass(frozen=True, slots=True)
class SegmentUsage:
    """What one run segment consumed, in the units the ledger and reports use (money in whole won)."""

    model: str
    gpu_hours: float
    energy_kwh: float
    cost_krw: int
    co2_kg: float
    flops: float


@dataclass(frozen=True, slots=True)
class Billing:
    """Who pays for a segment and what of the job is already billed: the payer's ``rate`` and the
    GPU-seconds of the job's earlier segments charged to the same award."""

    rate: Rate
    billed_gpu_s: Fraction = Fraction(0)


def meter_segment(
    model: AcceleratorModel,
    gpus: int,
    held: timedelta,
    site: Site,
    billing: Billing,
    measured_kwh: float | None = None,
    utilization: float = ASSUMED_UTILIZATION,
) -> SegmentUsage:
    """Meter ``gpus`` accelerators of ``model`` held for ``held`` at ``site``, charged per ``billing``."""
    gpu_s = gpu_seconds(gpus, held)
    gpu_hours = float(gpu_s) / SECONDS_PER_HOUR
    energy_kwh = measured_kwh if measured_kwh is not None else model.tdp_w * gpu_hours * site.pue / 1000.0
    return SegmentUsage(
        model=model.name,
        gpu_hours=gpu_hours,
        energy_kwh=energy_kwh,
        cost_krw=charge_krw(billing.rate, billing.billed_gpu_s, gpu_s),
        co2_kg=energy_kwh * site.carbon_g_per_kwh / 1000.0,
        flops=gpu_hours * SECONDS_PER_HOUR * model.bf16_tflops * 1e12 * utilization,
    )
