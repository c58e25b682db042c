"""The one pricing function: whole won, one rounding rule, exactly the program's discounts."""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpucommons.domain.accelerators import get_model
from gpucommons.domain.cluster import Site
from gpucommons.domain.institution import INSTITUTION_KINDS
from gpucommons.metering import (
    Billing,
    Pricing,
    charge_krw,
    discount_for,
    gpu_seconds,
    meter_segment,
    payable_fraction,
    quote_krw,
    rate_for,
    round_half_up,
    whole_won,
)

SITE = Site("daejeon", pue=1.3, carbon_g_per_kwh=417.3)

fractions_0_1 = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
pricings = st.builds(
    Pricing,
    price_krw_per_gpu_hour=st.integers(min_value=0, max_value=1_000_000),
    discounts=st.dictionaries(
        st.sampled_from(INSTITUTION_KINDS), fractions_0_1, max_size=len(INSTITUTION_KINDS)
    ),
    youth_extra_discount=fractions_0_1,
)
# (GPUs, time held): up to 1,024 GPUs for up to ~11.5 days per segment, to the microsecond.
segments = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=1_024),
        st.integers(min_value=0, max_value=10**12).map(lambda us: timedelta(microseconds=us)),
    ),
    min_size=1,
    max_size=12,
)


@given(pricing=pricings, kind=st.sampled_from(INSTITUTION_KINDS), youth=st.booleans(), cut=segments)
def test_charging_a_job_in_segments_agrees_with_quoting_it_whole(
    pricing: Pricing, kind: str, youth: bool, cut: list[tuple[int, timedelta]]
) -> None:
    billing = Billing(rate_for(pricing, kind, youth))
    charged = 0
    for gpus, held in cut:
        usage = meter_segment(get_model("H100"), gpus, held, SITE, billing)
        assert isinstance(usage.cost_krw, int) and usage.cost_krw >= 0
        charged += usage.cost_krw
        billing = Billing(billing.rate, billing.billed_gpu_s + gpu_seconds(gpus, held))
    whole = sum((gpu_seconds(gpus, held) for gpus, held in cut), Fraction(0))
    assert charged == quote_krw(rate_for(pricing, kind, youth), whole)


@given(
    pricing=pricings,
    kind=st.sampled_from(INSTITUTION_KINDS),
    youth=st.booleans(),
    gpu_s=st.integers(0, 10**9),
)
def test_a_quote_is_the_exact_amount_rounded_half_up(
    pricing: Pricing, kind: str, youth: bool, gpu_s: int
) -> None:
    exact = pricing.price_krw_per_gpu_hour * payable_fraction(pricing, kind, youth) * Fraction(gpu_s, 3600)
    quote = quote_krw(rate_for(pricing, kind, youth), gpu_s)
    assert exact - Fraction(1, 2) < quote <= exact + Fraction(1, 2)
    assert quote <= quote_krw(rate_for(pricing, kind, youth), gpu_s + 1)  # more time never costs less


def test_halves_round_up() -> None:
    assert [round_half_up(Fraction(n, 2)) for n in range(6)] == [0, 1, 1, 2, 2, 3]
    # 9 s of one GPU at 100 won/h is exactly 0.25 won, 18 s 0.5 won.
    rate = rate_for(Pricing(100), "enterprise")
    assert (quote_krw(rate, 9), quote_krw(rate, 18)) == (0, 1)


def test_per_segment_rounding_would_lose_what_the_rule_keeps() -> None:
    # Three 1-second segments at 1,000 won/h are 0.2777... won each: rounded one by one they would
    # charge 0 in all; the job's whole 3 s are 0.8333... won, and the segments are charged 0 + 1 + 0.
    rate = rate_for(Pricing(1_000), "enterprise")
    assert [charge_krw(rate, billed, 1) for billed in (0, 1, 2)] == [0, 1, 0]
    assert quote_krw(rate, 3) == 1


def test_an_explicit_discount_of_zero_stays_zero() -> None:
    pricing = Pricing(2_000, {"startup": 0.0, "university": 0.0}, youth_extra_discount=0.0)
    assert discount_for(pricing, "startup") == 0
    assert discount_for(pricing, "startup", youth=True) == 0
    assert discount_for(pricing, "youth_startup") == 0
    assert discount_for(pricing, "university") == 0
    assert quote_krw(rate_for(pricing, "startup", youth=True), 3_600) == 2_000


def test_no_discounts_unless_the_program_states_them() -> None:
    plain = Pricing(2_000)
    assert {discount_for(plain, kind, youth) for kind in INSTITUTION_KINDS for youth in (False, True)} == {0}


def test_discounts_compose_as_decimals_not_binary_floats() -> None:
    pricing = Pricing(1_000, {"startup": 0.2, "sme": 0.3, "university": 0.5}, youth_extra_discount=0.5)
    assert discount_for(pricing, "startup") == Fraction(1, 5)
    assert discount_for(pricing, "startup", youth=True) == Fraction(3, 5)
    assert discount_for(pricing, "university") == Fraction(1, 2)
    assert rate_for(pricing, "sme").krw_per_gpu_hour == 700  # not 699.9999999999999
    assert discount_for(Pricing(1, {"startup": 7.0}), "startup") == 1  # clamped to free


@pytest.mark.parametrize("value", [2000.5, -1, -0.0001, True, "2000", None])
def test_whole_won_refuses_anything_but_whole_non_negative_won(value: object) -> None:
    with pytest.raises(ValueError, match=r"won|negative"):
        whole_won(value)  # type: ignore[arg-type]


def test_whole_won_accepts_integral_floats() -> None:
    assert whole_won(2000.0) == 2000 and isinstance(whole_won(2000.0), int)
    assert whole_won(0) == 0


@pytest.mark.parametrize("price", [2000.0, 1.5, -1, True])
def test_a_price_is_whole_non_negative_won(price: object) -> None:
    with pytest.raises(ValueError, match="whole non-negative won"):
        Pricing(price)  # type: ignore[arg-type]


def test_gpu_seconds_are_exact_to_the_microsecond() -> None:
    assert gpu_seconds(3, timedelta(seconds=1, microseconds=1)) == Fraction(3_000_003, 1_000_000)
    assert gpu_seconds(8, timedelta(seconds=-5)) == 0
