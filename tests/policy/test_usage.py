"""Decayed usage: the closed form halves every half-life and matches a fine-step integration of
dU/dt = rate - U ln2 / half_life."""

from __future__ import annotations

import math

import pytest

from gpucommons.policy.usage import UsageLedger

HALF_LIFE_S = 100.0


def integrate(changes: list[tuple[float, int]], until_s: float, steps_per_half_life: int = 20_000) -> float:
    """Explicit midpoint integration of the decayed-usage ODE under piecewise-constant rates."""
    k = math.log(2.0) / HALF_LIFE_S
    dt = HALF_LIFE_S / steps_per_half_life
    value, rate, t = 0.0, 0, changes[0][0]
    pending = list(changes)
    while t < until_s - 1e-12:
        while pending and pending[0][0] <= t + 1e-12:
            rate += pending.pop(0)[1]
        step = min(dt, until_s - t, (pending[0][0] - t) if pending else dt)
        half = value + 0.5 * step * (rate - k * value)
        value += step * (rate - k * half)
        t += step
    return value


def test_usage_halves_after_one_half_life_with_rate_zero() -> None:
    ledger = UsageLedger(HALF_LIFE_S)
    ledger.change("a", 4, 0.0)
    ledger.change("a", -4, 50.0)
    held = ledger.at(50.0)["a"]
    assert held > 0
    assert ledger.at(50.0 + HALF_LIFE_S)["a"] == pytest.approx(held / 2)
    assert ledger.at(50.0 + 3 * HALF_LIFE_S)["a"] == pytest.approx(held / 8)


def test_constant_rate_approaches_rate_times_tau() -> None:
    ledger = UsageLedger(HALF_LIFE_S)
    ledger.change("a", 3, 0.0)
    tau = HALF_LIFE_S / math.log(2.0)
    assert ledger.at(HALF_LIFE_S)["a"] == pytest.approx(3 * tau * 0.5)
    assert ledger.at(50 * HALF_LIFE_S)["a"] == pytest.approx(3 * tau)


@pytest.mark.parametrize(
    ("changes", "until_s"),
    [
        ([(0.0, 4)], 300.0),
        ([(0.0, 4), (30.0, 2), (120.0, -6)], 200.0),
        ([(10.0, 8), (15.0, -8), (40.0, 1), (41.5, 1)], 333.0),
    ],
)
def test_closed_form_matches_numeric_integration(changes: list[tuple[float, int]], until_s: float) -> None:
    ledger = UsageLedger(HALF_LIFE_S)
    for at_s, delta in changes:
        ledger.change("a", delta, at_s)
    assert ledger.at(until_s)["a"] == pytest.approx(integrate(changes, until_s), rel=1e-6)


def test_tenants_are_independent_and_unknown_ones_absent() -> None:
    ledger = UsageLedger(HALF_LIFE_S)
    ledger.change("a", 2, 0.0)
    ledger.change("b", 1, 50.0)
    values = dict(ledger.at(100.0))
    tau = HALF_LIFE_S / math.log(2.0)
    assert values["a"] == pytest.approx(2 * tau * (1 - 2.0**-1.0))
    assert values["b"] == pytest.approx(1 * tau * (1 - 2.0**-0.5))
    assert "c" not in values


def test_reading_does_not_change_the_ledger() -> None:
    ledger = UsageLedger(HALF_LIFE_S)
    ledger.change("a", 2, 0.0)
    first = dict(ledger.at(70.0))
    dict(ledger.at(500.0))
    assert dict(ledger.at(70.0)) == first


def test_usage_at_reads_like_a_mapping_of_every_known_tenant() -> None:
    ledger = UsageLedger(HALF_LIFE_S)
    ledger.change("a", 2, 0.0)
    ledger.change("b", 1, 50.0)
    usage = ledger.at(100.0)
    assert sorted(usage) == ["a", "b"] and len(usage) == 2
    assert usage.get("c") is None and "c" not in usage
    with pytest.raises(KeyError):
        usage["c"]
    assert usage["a"] == usage["a"] == dict(usage)["a"]
