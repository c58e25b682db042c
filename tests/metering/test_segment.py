"""Metering of one run segment, with hand-computed figures."""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction

import pytest

from gpucommons.domain.accelerators import get_model
from gpucommons.domain.cluster import Site
from gpucommons.metering import ASSUMED_UTILIZATION, Billing, Pricing, meter_segment, rate_for

SITE = Site("daejeon", pue=1.3, carbon_g_per_kwh=417.3)
NATIONAL = Pricing(
    2_000,
    {"university": 1.0, "research_institute": 1.0, "startup": 0.5, "sme": 0.3},
    youth_extra_discount=0.5,
)
NINETY_MINUTES = timedelta(minutes=90)


def billing(kind: str = "enterprise", youth: bool = False, pricing: Pricing = NATIONAL) -> Billing:
    return Billing(rate_for(pricing, kind, youth))


def test_two_h100_for_ninety_minutes() -> None:
    usage = meter_segment(get_model("H100"), 2, NINETY_MINUTES, SITE, billing())
    assert usage.model == "H100"
    assert usage.gpu_hours == pytest.approx(3.0)
    assert usage.energy_kwh == pytest.approx(700 * 3.0 * 1.3 / 1000)  # 2.73 kWh
    assert usage.energy_kwh == pytest.approx(2.73)
    assert usage.co2_kg == pytest.approx(2.73 * 417.3 / 1000)  # 1.139229 kg
    assert usage.cost_krw == 6_000 and isinstance(usage.cost_krw, int)
    assert usage.flops == pytest.approx(3.0 * 3600 * 989e12 * 0.4)  # 4.27248e18
    assert ASSUMED_UTILIZATION == 0.4


@pytest.mark.parametrize(
    ("kind", "youth", "want_cost_krw"),
    [
        ("university", False, 0),
        ("research_institute", False, 0),
        ("research-institute", False, 0),
        ("enterprise", False, 6_000),
        ("startup", False, 3_000),
        ("startup", True, 1_500),
        ("youth_startup", False, 1_500),
        ("sme", False, 4_200),
        ("unknown-kind", False, 6_000),
    ],
)
def test_cost_after_the_programs_discounts(kind: str, youth: bool, want_cost_krw: int) -> None:
    usage = meter_segment(get_model("H100"), 2, NINETY_MINUTES, SITE, billing(kind, youth))
    assert usage.cost_krw == want_cost_krw


def test_a_program_without_discounts_charges_everyone_list_price() -> None:
    plain = Pricing(2_000)
    for kind, youth in (("university", False), ("startup", True), ("sme", False)):
        usage = meter_segment(get_model("H100"), 2, NINETY_MINUTES, SITE, billing(kind, youth, plain))
        assert usage.cost_krw == 6_000, kind


def test_segment_charge_continues_what_the_job_was_billed() -> None:
    # 1 GPU at 1,000 won/h for 1 s is 0.2777... won. Alone it rounds to 0; after 1 s already billed
    # the two seconds quote 0.555... -> 1 won, so this segment is charged the 1 won the first one kept.
    rate = rate_for(Pricing(1_000), "enterprise")
    alone = meter_segment(get_model("H100"), 1, timedelta(seconds=1), SITE, Billing(rate))
    after = meter_segment(get_model("H100"), 1, timedelta(seconds=1), SITE, Billing(rate, Fraction(1)))
    assert (alone.cost_krw, after.cost_krw) == (0, 1)


def test_measured_energy_wins_and_drives_co2() -> None:
    usage = meter_segment(get_model("A100"), 4, timedelta(hours=1), SITE, billing("sme"), measured_kwh=1.0)
    assert usage.energy_kwh == 1.0
    assert usage.co2_kg == pytest.approx(0.4173)
    assert usage.cost_krw == 5_600  # 4 GPU-h x 2,000 won x (1 - 0.3)


def test_negative_or_zero_duration_meters_nothing() -> None:
    usage = meter_segment(get_model("B200"), 8, timedelta(seconds=-5), SITE, billing())
    assert (usage.gpu_hours, usage.energy_kwh, usage.cost_krw, usage.co2_kg, usage.flops) == (0, 0, 0, 0, 0)
