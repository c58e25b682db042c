"""Response bodies of the usage reports (design note 0010)."""

from __future__ import annotations

from datetime import datetime

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
    wall_hours: float  # the segments' time held
    mean_gpus: float  # GPU-hours / wall hours: the job size, weighted by time
    max_gpus: int  # the largest segment's GPUs
    # Of the jobs that ended in the period having run (time in the system less time running); null in
    # a time series and for groupings a job has no single value of (site, model).
    waited_jobs: int | None
    avg_wait_h: float | None
    p90_wait_h: float | None


class UsageReportRead(BaseModel):
    by: str
    period: str  # as asked, or "all"
    every: str | None  # the time series' bucket, or null for an aggregate
    lines: list[UsageLineRead]


class ComputeLineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    project: str
    lineage: str = ""  # the model lineage (a ledger by lineage); "" on a line per project
    flops: float
    gpu_hours: float
    share_of_threshold: float  # of the 10^26 FLOPs of the AI Basic Act
    status: str  # "over", "above 80 %", "above 50 %" or "below 50 %"


class ComputeLedgerRead(BaseModel):
    by: str  # "project" or "lineage"
    threshold_flops: float
    utilization_assumed: float  # FLOPs = GPU-seconds x BF16 peak x this
    lines: list[ComputeLineRead]


class ComputeModelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    model: str
    bf16_tflops: float  # the dense BF16 peak per device the estimate used
    gpu_hours: float
    flops: float


class ComputeMonthRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    month: str  # YYYY-MM
    gpu_hours: float
    flops: float
    cumulative_flops: float


class TransparencyRead(BaseModel):
    """A project's transparency report on its training compute."""

    model_config = ConfigDict(from_attributes=True)

    project: str
    generated_at: datetime
    threshold_flops: float
    utilization_assumed: float
    total: ComputeLineRead
    lineages: list[ComputeLineRead]
    models: list[ComputeModelRead]
    months: list[ComputeMonthRead]
    method: str
