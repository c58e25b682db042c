"""Request and response bodies of declared targets and their attainment (design note 0014)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from annotated_types import Interval
from pydantic import Field

from gpucommons.service.schemas.common import MAX_GPU_HOURS, Id, In, Name, Out

TargetKind = Literal["share", "gpu_hours", "wait"]
TargetGrouping = Literal["project", "institution", "kind", "region", "program", "model"]
TargetEvery = Literal["week", "month", "quarter", "year"]


class TargetCreate(In):
    name: Name
    kind: TargetKind = Field(
        description="share: the group's % of GPU-hours, at least threshold; gpu_hours: its GPU-hours, "
        "at least threshold; wait: its jobs' percentile-th wait in hours, at most threshold"
    )
    by: TargetGrouping = Field(description="the grouping of the usage reports (a wait: not by model)")
    group: Name = Field(description="the group's name in that grouping, e.g. startup, non_capital")
    threshold: Annotated[float, Interval(ge=0.0, le=MAX_GPU_HOURS)] = Field(
        description="% (a share, at most 100), GPU-hours or hours"
    )
    program_id: Id | None = Field(default=None, description="only this program's usage (default: all)")
    percentile: Annotated[int, Interval(ge=1, le=100)] | None = Field(
        default=None, description="a wait target's percentile (default 90)"
    )
    every: TargetEvery = Field(default="month", description="the length of the periods it is judged over")


class TargetRead(Out):
    id: int
    name: str
    kind: str
    by: str
    group: str
    program_id: int | None
    threshold: float
    unit: str
    percentile: int | None
    every: str
    description: str
    created_at: datetime


class AttainmentRead(Out):
    target_id: int
    name: str
    kind: str
    description: str
    period: str
    status: Literal["met", "missed", "no data"]
    met: bool | None = Field(description="null: nothing to measure in the period")
    value: float | None = Field(description="what the group attained, in unit")
    threshold: float
    unit: str
    margin: float | None = Field(description="how far on the good side of the bound; negative: missed")
    group_gpu_hours: float | None
    scope_gpu_hours: float | None
    jobs: int | None = Field(description="a wait target: the jobs of the group that ended in the period")


class TargetReportRead(Out):
    period: str = Field(description="as asked, or 'latest closed': each target's last whole period")
    lines: list[AttainmentRead]
