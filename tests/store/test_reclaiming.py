"""The pure lifecycle rules (``gpucommons.reclaiming``): the usage-against-plan table and its band
edges, what makes a table refused, the plan pro rata, whole-unit rounding, which periods have ended,
budget alert levels, and that the module stays pure."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import gpucommons.reclaiming as reclaiming
from gpucommons.errors import InvalidRequestError
from gpucommons.reclaiming import (
    DEFAULT_RECLAIM_TABLE,
    AwardPlan,
    ReclaimSchedule,
    ReclaimTable,
    budget_alerts_reached,
    decide_reclaim,
    expiry_warning_due,
)
from tests.test_layering import FORBIDDEN_MODULES, WALL_CLOCK_CALLS, imported_names

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("used", "want_fraction"),
    [
        (0.0, 0.80),
        (0.1999, 0.80),
        (0.20, 0.55),  # a band's lower edge belongs to it
        (0.3999, 0.55),
        (0.40, 0.35),
        (0.5499, 0.35),
        (0.55, 0.20),
        (0.6999, 0.20),
        (0.70, 0.0),
        (1.5, 0.0),
    ],
)
def test_the_default_table_at_and_around_its_edges(used: float, want_fraction: float) -> None:
    assert DEFAULT_RECLAIM_TABLE.fraction(used) == want_fraction


@pytest.mark.parametrize(
    ("raw", "want_error"),
    [
        ([[0.4, 0.5], [0.2, 0.3]], "edges must rise"),
        ([[0.2, 0.5], [0.2, 0.3]], "edges must rise"),
        ([[0.2, 0.3], [0.4, 0.5]], "must not take more back"),
        ([[0.2, 1.2]], "fraction must be within 0..1"),
        ([[0.2, -0.1]], "fraction must be within 0..1"),
        ([[0.0, 0.5]], r"below must be within \(0, 1\]"),
        ([[1.1, 0.5]], r"below must be within \(0, 1\]"),
        ([[0.2]], "pair"),
        ([["0.2", 0.5]], "not a finite number"),
        ([[True, 0.5]], "not a finite number"),
        ([[float("nan"), 0.5]], "not a finite number"),
        ({"0.2": 0.5}, "must be a list"),
    ],
)
def test_a_table_that_is_not_monotone_or_out_of_range_is_refused(raw: object, want_error: str) -> None:
    with pytest.raises(InvalidRequestError, match=want_error):
        ReclaimTable.parse(raw)


def test_a_table_round_trips_and_an_empty_one_never_reclaims() -> None:
    assert ReclaimTable.parse(DEFAULT_RECLAIM_TABLE.to_json()) == DEFAULT_RECLAIM_TABLE
    assert ReclaimTable.parse([]).fraction(0.0) == 0.0


def _plan(used: float, *, gpus: int = 0, budget: float | None = None, days: int = 120) -> AwardPlan:
    return AwardPlan(T0, T0 + timedelta(days=days), gpus, budget, used)


def test_the_plan_is_the_budget_pro_rata_or_the_guarantee_over_the_period() -> None:
    half = T0 + timedelta(days=60)
    assert _plan(0, budget=1000).planned_hours(half) == pytest.approx(500)
    assert _plan(0, gpus=16).planned_hours(half) == pytest.approx(16 * 60 * 24)
    assert _plan(0, budget=1000).planned_hours(T0 - timedelta(days=1)) == 0
    assert _plan(0, budget=1000).planned_hours(T0 + timedelta(days=500)) == pytest.approx(1000)
    assert _plan(250, budget=1000).usage_ratio(half) == pytest.approx(0.5)
    assert _plan(0, budget=1000).usage_ratio(T0) is None


@pytest.mark.parametrize(
    ("used_of_plan", "gpus", "unit", "want_gpus", "want_fraction"),
    [
        (0.10, 16, 8, 8, 0.80),  # 12.8 GPUs rounded down to one 8-GPU unit
        (0.10, 32, 8, 24, 0.80),  # 25.6 -> 24
        (0.30, 16, 8, 8, 0.55),  # 8.8 -> 8
        (0.45, 16, 8, 0, 0.35),  # 5.6 -> less than a unit: none
        (0.45, 16, 1, 5, 0.35),
        (0.60, 40, 8, 8, 0.20),  # exactly one unit
        (0.70, 16, 8, 0, 0.0),
    ],
)
def test_guaranteed_gpus_come_back_in_whole_units_rounded_down(
    used_of_plan: float, gpus: int, unit: int, want_gpus: int, want_fraction: float
) -> None:
    at = T0 + timedelta(days=30)
    planned = _plan(0, gpus=gpus).planned_hours(at)
    decision = decide_reclaim(_plan(used_of_plan * planned, gpus=gpus), DEFAULT_RECLAIM_TABLE, unit, at)
    assert (decision.gpus, decision.fraction) == (want_gpus, want_fraction)
    assert decision.usage_ratio == pytest.approx(used_of_plan)
    assert decision.gpu_hours == 0.0


def test_a_budget_loses_the_fraction_of_what_it_has_left() -> None:
    at = T0 + timedelta(days=60)  # 500 of 1000 hours planned by now
    decision = decide_reclaim(_plan(150, budget=1000), DEFAULT_RECLAIM_TABLE, 8, at)  # 30 % of plan
    assert decision.fraction == 0.55
    assert decision.gpu_hours == pytest.approx(0.55 * 850)
    assert decision.takes_anything


@pytest.mark.parametrize(
    ("days_in", "award_days", "want"),
    [(0, 120, 0), (29, 120, 0), (30, 120, 1), (89, 120, 2), (90, 120, 3), (119, 120, 3), (200, 120, 3)],
)
def test_periods_end_every_period_while_the_award_runs(days_in: int, award_days: int, want: int) -> None:
    schedule = ReclaimSchedule(period_days=30, warning_days=7)
    ends_at = T0 + timedelta(days=award_days)
    assert schedule.periods_ended(T0, ends_at, T0 + timedelta(days=days_in)) == want


def test_a_period_ending_with_the_award_is_left_to_expiry() -> None:
    schedule = ReclaimSchedule(period_days=30, warning_days=0)
    assert schedule.periods_ended(T0, T0 + timedelta(days=60), T0 + timedelta(days=60)) == 1


@pytest.mark.parametrize(("period", "warning"), [(0, 0), (30, 30), (30, -1)])
def test_a_schedule_whose_warning_is_not_inside_the_period_is_refused(period: int, warning: int) -> None:
    with pytest.raises(InvalidRequestError):
        ReclaimSchedule(period, warning)


@pytest.mark.parametrize(
    ("used", "budget", "want"),
    [(0, 100, ()), (49.9, 100, ()), (50, 100, (0.5,)), (80, 100, (0.5, 0.8)), (90, None, ()), (1, 0, ())],
)
def test_budget_alert_levels(used: float, budget: float | None, want: tuple[float, ...]) -> None:
    assert budget_alerts_reached(used, budget) == want


def test_the_expiry_warning_is_due_within_its_days_before_the_end() -> None:
    ends_at = T0 + timedelta(days=30)
    assert not expiry_warning_due(ends_at, ends_at - timedelta(days=14, seconds=1), 14)
    assert expiry_warning_due(ends_at, ends_at - timedelta(days=14), 14)
    assert not expiry_warning_due(ends_at, ends_at, 14)


def test_the_rules_are_pure() -> None:
    tree = ast.parse(Path(reclaiming.__file__).read_text(encoding="utf-8"))
    roots = {name.split(".")[0] for name in imported_names(tree, "gpucommons.reclaiming")}
    assert not roots & FORBIDDEN_MODULES
    calls = {
        (node.func.value.id, node.func.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
    }
    assert not calls & WALL_CLOCK_CALLS
