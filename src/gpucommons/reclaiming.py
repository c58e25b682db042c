"""Pure rules of an award's lifecycle: how much of an award's remainder is taken back when it is used
less than planned, when that rule is evaluated, and when a notice falls due. No database or clock here;
``store/lifecycle.py`` feeds it rows and a ``now`` (design note 0012).

The reclaim rule is a table of bands over the usage ratio, GPU-hours used against GPU-hours planned
by now, the plan being the award's whole budget (or its guaranteed GPUs for its whole period) spread
evenly over its period. The first band whose ``below`` the ratio is under gives the fraction of the
remainder taken back; at or above the last band nothing is. The default, ``DEFAULT_RECLAIM_TABLE``:

    used under 20 % of plan   -> 80 % of the remainder taken back
    used 20 % to under 40 %   -> 55 %
    used 40 % to under 55 %   -> 35 %
    used 55 % to under 70 %   -> 20 %
    used 70 % or more         -> nothing

Each band's lower edge belongs to it (exactly 55 % used is the 55-70 % band). A table is monotone: its
edges rise and its fractions never rise with them, so using more never costs more. The rule runs once
per period of ``period_days`` counted from the award's start, at each period's end while the award
still runs, and a warning may go out ``warning_days`` before.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gpucommons.awarding import floor_to_unit
from gpucommons.errors import InvalidRequestError
from gpucommons.metering.pricing import SECONDS_PER_HOUR

DEFAULT_PERIOD_DAYS = 30
DEFAULT_WARNING_DAYS = 7
BUDGET_ALERTS = (0.5, 0.8)  # fractions of a GPU-hour budget used that each send one notice


@dataclass(frozen=True)
class ReclaimBand:
    """Usage ratios under ``below`` (and at or above the previous band's) lose ``fraction`` of the
    remainder."""

    below: float
    fraction: float


@dataclass(frozen=True)
class ReclaimTable:
    """The bands in rising order; no bands at all: nothing is ever reclaimed."""

    bands: tuple[ReclaimBand, ...]

    @classmethod
    def parse(cls, raw: object) -> ReclaimTable:
        """A table from its JSON form, ``[[below, fraction], ...]``, checked: each ``below`` within
        (0, 1] and rising, each fraction within 0..1 and never rising. Anything else is bad input."""
        if not isinstance(raw, list | tuple):
            raise InvalidRequestError(f"reclaim table must be a list of [below, fraction] pairs, got {raw!r}")
        bands = tuple(_band(i, pair) for i, pair in enumerate(raw))
        for before, after in itertools.pairwise(bands):
            if after.below <= before.below:
                raise InvalidRequestError(
                    f"reclaim table is not monotone: band edges must rise, {after.below:g} follows "
                    f"{before.below:g}"
                )
            if after.fraction > before.fraction:
                raise InvalidRequestError(
                    f"reclaim table is not monotone: using more must not take more back, "
                    f"{after.fraction:g} below {after.below:g} follows {before.fraction:g} "
                    f"below {before.below:g}"
                )
        return cls(bands)

    def to_json(self) -> list[list[float]]:
        return [[band.below, band.fraction] for band in self.bands]

    def fraction(self, usage_ratio: float) -> float:
        """The fraction of the remainder taken back from an award used at ``usage_ratio`` of plan."""
        return next((band.fraction for band in self.bands if usage_ratio < band.below), 0.0)


def _band(index: int, pair: object) -> ReclaimBand:
    if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
        raise InvalidRequestError(
            f"reclaim table band {index} must be a [below, fraction] pair, got {pair!r}"
        )
    below, fraction = (_number(index, value) for value in pair)
    if not 0.0 < below <= 1.0:
        raise InvalidRequestError(f"reclaim table band {index}: below must be within (0, 1], got {below:g}")
    if not 0.0 <= fraction <= 1.0:
        raise InvalidRequestError(
            f"reclaim table band {index}: fraction must be within 0..1, got {fraction:g}"
        )
    return ReclaimBand(below, fraction)


def _number(index: int, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidRequestError(f"reclaim table band {index}: {value!r} is not a finite number")
    return float(value)


DEFAULT_RECLAIM_TABLE = ReclaimTable.parse([[0.20, 0.80], [0.40, 0.55], [0.55, 0.35], [0.70, 0.20]])


@dataclass(frozen=True)
class ReclaimSchedule:
    """When the rule runs: at the end of every ``period_days`` from an award's start, with a warning
    ``warning_days`` before (fewer than the period, so a warning never precedes the previous check)."""

    period_days: int = DEFAULT_PERIOD_DAYS
    warning_days: int = DEFAULT_WARNING_DAYS

    def __post_init__(self) -> None:
        if self.period_days < 1:
            raise InvalidRequestError(f"reclaim period must be at least 1 day, got {self.period_days}")
        if not 0 <= self.warning_days < self.period_days:
            raise InvalidRequestError(
                f"reclaim warning must be 0 to {self.period_days - 1} days before the period's end "
                f"(the period is {self.period_days} days), got {self.warning_days}"
            )

    def period_end(self, starts_at: datetime, period: int) -> datetime:
        return starts_at + timedelta(days=self.period_days * period)

    def periods_ended(self, starts_at: datetime, ends_at: datetime, at: datetime) -> int:
        """How many of the award's periods have ended by ``at`` with the award still running at their
        end (a period ending at or after ``ends_at`` is never checked: expiry takes everything back)."""
        if at <= starts_at:
            return 0
        span = timedelta(days=self.period_days)
        ended = (min(at, ends_at) - starts_at) // span
        while ended > 0 and self.period_end(starts_at, ended) >= ends_at:
            ended -= 1
        return ended


@dataclass(frozen=True)
class AwardPlan:
    """What the rule reads of an award: its period, what it was given and what it has used (in its
    budget's unit)."""

    starts_at: datetime
    ends_at: datetime
    guaranteed_gpus: int
    gpu_hours_budget: float | None
    gpu_hours_used: float

    @property
    def planned_total_hours(self) -> float:
        """The budget when there is one, else the guaranteed GPUs for the whole period."""
        if self.gpu_hours_budget:
            return self.gpu_hours_budget
        duration_h = (self.ends_at - self.starts_at).total_seconds() / SECONDS_PER_HOUR
        return self.guaranteed_gpus * duration_h

    def planned_hours(self, at: datetime) -> float:
        """The plan pro rata: the share of the period gone by ``at`` of the planned total."""
        elapsed = (min(max(at, self.starts_at), self.ends_at) - self.starts_at).total_seconds()
        return self.planned_total_hours * elapsed / (self.ends_at - self.starts_at).total_seconds()

    def usage_ratio(self, at: datetime) -> float | None:
        """GPU-hours used against planned by ``at``; ``None`` while nothing was planned yet."""
        planned = self.planned_hours(at)
        return None if planned <= 0 else self.gpu_hours_used / planned

    @property
    def budget_left_hours(self) -> float:
        return max(0.0, (self.gpu_hours_budget or 0.0) - self.gpu_hours_used)


@dataclass(frozen=True)
class ReclaimDecision:
    """What the rule takes back: ``gpus`` in whole program units (rounded down, so never more than
    the fraction says) and ``gpu_hours`` of the budget left."""

    usage_ratio: float
    fraction: float
    gpus: int
    gpu_hours: float

    @property
    def takes_anything(self) -> bool:
        return self.gpus > 0 or self.gpu_hours > 0


def decide_reclaim(plan: AwardPlan, table: ReclaimTable, unit_gpus: int, at: datetime) -> ReclaimDecision:
    """Apply ``table`` to ``plan`` as used by ``at``: the fraction of the remainder, the guaranteed
    GPUs kept for the rest of the period and the budget not yet used, that goes back."""
    ratio = plan.usage_ratio(at)
    if ratio is None:
        return ReclaimDecision(0.0, 0.0, 0, 0.0)
    fraction = table.fraction(ratio)
    gpus = floor_to_unit(math.floor(fraction * plan.guaranteed_gpus + 1e-9), unit_gpus)
    return ReclaimDecision(ratio, fraction, gpus, fraction * plan.budget_left_hours)


def budget_alerts_reached(gpu_hours_used: float, gpu_hours_budget: float | None) -> tuple[float, ...]:
    """The ``BUDGET_ALERTS`` levels a budget has reached (none without a budget)."""
    if not gpu_hours_budget:
        return ()
    return tuple(level for level in BUDGET_ALERTS if gpu_hours_used >= level * gpu_hours_budget)


def expiry_warning_due(ends_at: datetime, at: datetime, warning_days: int) -> bool:
    """Whether an award ending at ``ends_at`` is within ``warning_days`` of its end at ``at``."""
    return ends_at - timedelta(days=warning_days) <= at < ends_at
