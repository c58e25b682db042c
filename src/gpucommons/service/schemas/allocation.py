"""Request and response bodies for programs, proposals, reviews and awards."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveInt

from gpucommons.service.schemas.tenancy import InstitutionKind


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ProgramCreate(_In):
    name: str = Field(min_length=1, max_length=200)
    model: str = Field(min_length=1, max_length=64, description="accelerator model, e.g. H200")
    capacity_gpus: int = Field(ge=0)
    unit_gpus: PositiveInt = Field(default=8, description="allocation unit; 8 = whole 8-GPU servers")
    cap_per_org_gpus: PositiveInt | None = None
    non_capital_bonus: NonNegativeFloat = Field(default=0.0, description="added to the mean review score")
    duration_days: PositiveInt = 120
    price_krw_per_gpu_hour: NonNegativeFloat = 0.0
    discounts: dict[InstitutionKind, float] = Field(
        default_factory=dict, description="fraction off the price per institution kind (1.0 = free)"
    )
    youth_startup_extra_discount: float = Field(default=0.0, ge=0.0, le=1.0)
    reclaim_below_utilization: float | None = Field(default=None, ge=0.0, le=1.0)
    reclaim_after_days: PositiveInt | None = None
    status: Literal["open", "closed"] = "open"


class ProgramRead(_Out):
    id: int
    name: str
    model: str
    capacity_gpus: int
    unit_gpus: int
    cap_per_org_gpus: int | None
    non_capital_bonus: float
    duration_days: int
    price_krw_per_gpu_hour: float
    discounts: dict[str, float]
    youth_startup_extra_discount: float
    reclaim_below_utilization: float | None
    reclaim_after_days: int | None
    status: str
    created_at: datetime


class ProposalCreate(_In):
    program_id: int
    project_id: int
    requested_gpus: PositiveInt
    justification: str = Field(default="", max_length=20_000)


class ProposalRead(_Out):
    id: int
    program_id: int
    project_id: int
    submitted_by: int
    requested_gpus: int
    justification: str
    status: str
    submitted_at: datetime


class ReviewCreate(_In):
    score: int = Field(ge=0, le=100)
    comment: str = Field(default="", max_length=20_000)


class ReviewRead(_Out):
    id: int
    proposal_id: int
    reviewer_id: int
    score: int
    comment: str
    created_at: datetime


class AwardCreate(_In):
    """A hand award: a GPU-hour budget, guaranteed GPUs, or both, over [starts_at, ends_at)."""

    project_id: int
    program_id: int
    proposal_id: int | None = None
    gpu_hours_budget: NonNegativeFloat | None = None
    guaranteed_gpus: int = Field(default=0, ge=0)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None


class AwardRead(_Out):
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
    gpu_hours_used: float
    reclaimed_gpus: int
    created_at: datetime


class AwardExtend(_In):
    ends_at: AwareDatetime


class AutoAwardRequest(_In):
    starts_at: AwareDatetime | None = None


class ReclaimRequest(_In):
    """Mean GPU utilization (0..1) of each award's guaranteed GPUs over the program's reclaim window."""

    utilization_by_award: dict[int, float] = Field(default_factory=dict)


class ReclaimRead(_Out):
    id: int
    award_id: int
    reclaimed_gpus: int
    utilization: float
    reclaimed_at: datetime
