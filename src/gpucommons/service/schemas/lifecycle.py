"""Request and response bodies of the award lifecycle: a step run by hand, a program's reclaim rule and
the notices of the outbox (design note 0012)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from annotated_types import Interval
from pydantic import Field

from gpucommons.reclaiming import DEFAULT_PERIOD_DAYS, DEFAULT_WARNING_DAYS
from gpucommons.service.schemas.allocation import ReclaimBandIn, ReclaimRead
from gpucommons.service.schemas.common import MAX_DAYS, Days, In, Out, Timestamp


class LifecycleRun(In):
    now: Timestamp | None = Field(default=None, description="the step's time (default: the server's now)")


class LifecycleReportRead(Out):
    now: datetime
    expired: list[int] = Field(description="ids of the awards that expired")
    reclaims: list[ReclaimRead]
    offered: list[int] = Field(description="ids of the awards made from the capacity reclaimed")
    notices: list[int] = Field(description="ids of the notices queued")


class ReclaimRuleRead(Out):
    program_id: int
    table: list[list[float]] = Field(
        description="[[below, fraction], ...]: usage against plan -> share taken"
    )
    default_table: bool = Field(description="the program states no table of its own")
    period_days: int
    warning_days: int


class ReclaimRuleUpdate(In):
    """The whole rule: what is left out takes its default."""

    table: list[ReclaimBandIn] | None = Field(
        default=None,
        max_length=20,
        description="bands [below, fraction], below rising and fraction not; [] never reclaims; "
        "null: the default table",
    )
    period_days: Days = DEFAULT_PERIOD_DAYS
    warning_days: Annotated[int, Interval(ge=0, le=MAX_DAYS)] = Field(
        default=DEFAULT_WARNING_DAYS, description="fewer than period_days; 0: no warning"
    )


class NoticeRead(Out):
    id: int
    kind: str
    project_id: int | None  # null: a notice to the centre's staff (a declared target missed)
    award_id: int | None
    recipients: str
    subject: str
    body: str
    created_at: datetime
    sent_at: datetime | None
    attempts: int
    last_error: str | None
