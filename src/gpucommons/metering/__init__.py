"""Pure metering math: what one run segment of a job consumed and costs (GPU-hours, kWh, won, CO2,
training FLOPs). No I/O: the live engine feeds it rows and writes back the results."""

from gpucommons.metering.segment import (
    ASSUMED_UTILIZATION,
    DEFAULT_DISCOUNTS,
    YOUTH_STARTUP_EXTRA_DISCOUNT,
    Pricing,
    SegmentUsage,
    discount_for,
    meter_segment,
)

__all__ = [
    "ASSUMED_UTILIZATION",
    "DEFAULT_DISCOUNTS",
    "YOUTH_STARTUP_EXTRA_DISCOUNT",
    "Pricing",
    "SegmentUsage",
    "discount_for",
    "meter_segment",
]
