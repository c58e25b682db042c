"""Response bodies of the usage reports (design note 0010)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class UsageLineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    group: str
    bucket: str  # the day, week, month, quarter or year of a time series ("" in an aggregate)
    gpu_hours: float
    segments: int
    jobs: int  # distinct jobs with a segment that ended in the period
    energy_kwh: float
    co2_kg: float
    cost_krw: int
    flops: float


class UsageReportRead(BaseModel):
    by: str
    period: str  # as asked, or "all"
    every: str | None  # the time series' bucket, or null for an aggregate
    lines: list[UsageLineRead]


class ComputeLineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    project: str
    flops: float
    share_of_threshold: float  # of the 10^26 FLOPs of the AI Basic Act
    status: str  # "over", "above 80 %", "above 50 %" or "below 50 %"


class ComputeLedgerRead(BaseModel):
    threshold_flops: float
    utilization_assumed: float  # FLOPs = GPU-seconds x BF16 peak x this
    lines: list[ComputeLineRead]
