"""Metering of one run segment, with hand-computed figures."""

from __future__ import annotations

import pytest

from gpucommons.domain.accelerators import get_model
from gpucommons.domain.cluster import Site
from gpucommons.metering import ASSUMED_UTILIZATION, Pricing, discount_for, meter_segment

SITE = Site("daejeon", pue=1.3, carbon_g_per_kwh=417.3)
PRICING = Pricing(price_krw_per_gpu_hour=2_000.0)


def test_two_h100_for_ninety_minutes() -> None:
    usage = meter_segment(get_model("H100"), 2, 5_400.0, SITE, PRICING, "enterprise")
    assert usage.model == "H100"
    assert usage.gpu_hours == pytest.approx(3.0)
    assert usage.energy_kwh == pytest.approx(700 * 3.0 * 1.3 / 1000)  # 2.73 kWh
    assert usage.energy_kwh == pytest.approx(2.73)
    assert usage.co2_kg == pytest.approx(2.73 * 417.3 / 1000)  # 1.139229 kg
    assert usage.cost_krw == pytest.approx(6_000.0)
    assert usage.flops == pytest.approx(3.0 * 3600 * 989e12 * 0.4)  # 4.27248e18
    assert ASSUMED_UTILIZATION == 0.4


@pytest.mark.parametrize(
    ("kind", "youth", "want_cost_krw"),
    [
        ("university", False, 0.0),
        ("research_institute", False, 0.0),
        ("research-institute", False, 0.0),
        ("enterprise", False, 6_000.0),
        ("startup", False, 3_000.0),
        ("startup", True, 1_500.0),
        ("youth_startup", False, 1_500.0),
        ("unknown-kind", False, 6_000.0),
    ],
)
def test_cost_after_discounts(kind: str, youth: bool, want_cost_krw: float) -> None:
    usage = meter_segment(get_model("H100"), 2, 5_400.0, SITE, PRICING, kind, youth=youth)
    assert usage.cost_krw == pytest.approx(want_cost_krw)


def test_program_discounts_override_defaults() -> None:
    pricing = Pricing(1_000.0, {"startup": 0.2, "university": 0.5})
    assert discount_for(pricing, "startup") == pytest.approx(0.2)
    assert discount_for(pricing, "startup", youth=True) == pytest.approx(0.6)
    assert discount_for(pricing, "university") == pytest.approx(0.5)
    assert discount_for(Pricing(1.0, {"startup": 7.0}), "startup") == 1.0  # clamped


def test_measured_energy_wins_and_drives_co2() -> None:
    usage = meter_segment(get_model("A100"), 4, 3_600.0, SITE, PRICING, "sme", measured_kwh=1.0)
    assert usage.energy_kwh == 1.0
    assert usage.co2_kg == pytest.approx(0.4173)
    assert usage.cost_krw == pytest.approx(4 * 2_000 * 0.7)


def test_negative_or_zero_duration_meters_nothing() -> None:
    usage = meter_segment(get_model("B200"), 8, -5.0, SITE, PRICING, "enterprise")
    assert (usage.gpu_hours, usage.energy_kwh, usage.cost_krw, usage.co2_kg, usage.flops) == (0, 0, 0, 0, 0)
