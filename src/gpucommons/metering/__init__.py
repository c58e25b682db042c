"""Pure metering math: what one run segment of a job consumed and costs (GPU-hours, kWh, won, CO2,
training FLOPs), and the commons' one pricing function (``pricing``). No I/O: the live engine feeds it
rows and writes back the results."""

from gpucommons.metering.pricing import (
    Pricing,
    Rate,
    charge_krw,
    discount_for,
    gpu_seconds,
    payable_fraction,
    quote_krw,
    rate_for,
    round_half_up,
    whole_won,
)
from gpucommons.metering.segment import ASSUMED_UTILIZATION, Billing, SegmentUsage, meter_segment

__all__ = [
    "ASSUMED_UTILIZATION",
    "Billing",
    "Pricing",
    "Rate",
    "SegmentUsage",
    "charge_krw",
    "discount_for",
    "gpu_seconds",
    "meter_segment",
    "payable_fraction",
    "quote_krw",
    "rate_for",
    "round_half_up",
    "whole_won",
]
