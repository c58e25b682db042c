"""Request and response bodies for programs, proposals, reviews and awards."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from annotated_types import Interval
from pydantic import Field

from gpucommons.reclaiming import DEFAULT_PERIOD_DAYS, DEFAULT_WARNING_DAYS
from gpucommons.service.schemas.common import (
    MAX_BONUS,
    MAX_DAYS,
    MAX_GPU_HOURS,
    MAX_PRICE_KRW_PER_GPU_HOUR,
    Days,
    Fraction,
    Gpus,
    GpusOrZero,
    Id,
    IdKey,
    In,
    Name,
    Out,
    Text,
    Timestamp,
)
from gpucommons.service.schemas.tenancy import InstitutionKind

BudgetUnit = Literal["device-hours", "reference-hours"]  # domain.award.AWARD_UNITS
ReclaimBandIn = Annotated[list[Annotated[float, Interval(ge=0.0, le=1.0)]], Field(min_length=2, max_length=2)]


class ProgramCreate(In):
    name: Name
    model: Name = Field(
        max_length=64, description="accelerator model of this cluster's pools, e.g. H100 (any case)"
    )
    capacity_gpus: GpusOrZero = Field(description="at most the cluster's GPUs of that model")
    unit_gpus: Gpus = Field(default=8, description="allocation unit; 8 = whole 8-GPU servers")
    cap_per_org_gpus: Gpus | None = None
    non_capital_bonus: float = Field(
        default=0.0, ge=0.0, le=MAX_BONUS, description="added to the mean review score"
    )
    duration_days: Days = 120
    price_krw_per_gpu_hour: int = Field(
        default=0, ge=0, le=MAX_PRICE_KRW_PER_GPU_HOUR, description="list price in whole won"
    )
    discounts: dict[InstitutionKind, Fraction] = Field(
        default_factory=dict, description="fraction off the price per institution kind (1.0 = free)"
    )
    youth_startup_extra_discount: Fraction = 0.0
    reclaim_below_utilization: Fraction | None = None
    reclaim_after_days: Days | None = None
    reclaim_table: list[ReclaimBandIn] | None = Field(
        default=None,
        max_length=20,
        description="the lifecycle's reclaim rule (design note 0012): bands [below, fraction] of usage "
        "against plan, below rising and fraction not; [] never reclaims; null: the default table",
    )
    reclaim_period_days: Days = Field(default=DEFAULT_PERIOD_DAYS, description="days between evaluations")
    reclaim_warning_days: Annotated[int, Interval(ge=0, le=MAX_DAYS)] = Field(
        default=DEFAULT_WARNING_DAYS, description="days of warning before each; fewer than the period"
    )
    unit: BudgetUnit = Field(
        default="device-hours",
        description="what its awards' GPU-hour budgets count: device-hours of the program's model, or "
        "reference-hours, valid on every model at the job's speed there (design note 0009)",
    )
    status: Literal["open", "closed"] = "open"


class ProgramRead(Out):
    id: int
    name: str
    model: str
    capacity_gpus: int
    unit_gpus: int
    cap_per_org_gpus: int | None
    non_capital_bonus: float
    duration_days: int
    price_krw_per_gpu_hour: int
    discounts: dict[str, float]
    youth_startup_extra_discount: float
    reclaim_below_utilization: float | None
    reclaim_after_days: int | None
    reclaim_table: list[list[float]] | None  # null: the default table
    reclaim_period_days: int
    reclaim_warning_days: int
    unit: str
    status: str
    created_at: datetime


class ProposalCreate(In):
    program_id: Id
    project_id: Id
    requested_gpus: Gpus
    justification: Text = Field(default="", max_length=20_000)


class ProposalRead(Out):
    id: int
    program_id: int
    project_id: int
    submitted_by: int
    requested_gpus: int
    justification: str
    status: str
    submitted_at: datetime


class ReviewCreate(In):
    score: int = Field(ge=0, le=100)
    comment: Text = Field(default="", max_length=20_000)


class ReviewRead(Out):
    id: int
    proposal_id: int
    reviewer_id: int
    score: int
    comment: str
    created_at: datetime


class AwardCreate(In):
    """A hand award: a GPU-hour budget, guaranteed GPUs, or both, over [starts_at, ends_at)."""

    project_id: Id
    program_id: Id
    proposal_id: Id | None = None
    gpu_hours_budget: float | None = Field(default=None, ge=0.0, le=MAX_GPU_HOURS)
    guaranteed_gpus: GpusOrZero = 0
    starts_at: Timestamp | None = None
    ends_at: Timestamp | None = None


class AwardRead(Out):
    id: int
    proposal_id: int | None
    project_id: int
    program_id: int
    model: str
    gpu_hours_budget: float | None
    guaranteed_gpus: int
    starts_at: datetime
    ends_at: datetime
    status: str
    gpu_hours_used: float = Field(description="spent, in the budget's unit")
    reclaimed_gpus: int
    unit: str = Field(description="device-hours or reference-hours, the program's")
    created_at: datetime


class AwardExtend(In):
    ends_at: Timestamp


class AutoAwardRequest(In):
    starts_at: Timestamp | None = None


class ReclaimRequest(In):
    """Mean GPU utilization (0..1) of each award's guaranteed GPUs over the program's reclaim window."""

    utilization_by_award: dict[IdKey, Fraction] = Field(default_factory=dict, max_length=100_000)


class ReclaimRead(Out):
    id: int
    award_id: int
    reclaimed_gpus: int
    reclaimed_gpu_hours: float = Field(description="budget taken back, in the award's unit")
    utilization: float = Field(description="measured GPU use, or GPU-hours used against planned")
    reclaimed_at: datetime
    period: int | None = Field(
        description="the award's period whose end was evaluated (the lifecycle's rule)"
    )
