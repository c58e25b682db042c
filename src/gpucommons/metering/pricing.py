"""The commons' one pricing function: what GPU time costs a payer, in whole won.

Charging a segment, quoting a job and every report read their won from here, so they cannot disagree.

Money is an ``int`` of won everywhere it is stored, computed or shown. Only rates may be fractions: a
payer's rate is the list price (whole won per GPU-hour) times the exact fraction it pays after
discounts, kept as a ``Fraction`` so no binary float creeps into an amount.

**The rounding rule** (stated here and nowhere else): the exact amount of a job's GPU time under one
award is rounded half-up to the won once. A segment is charged the quote of the GPU time billed up to
its end minus the quote of the GPU time billed up to its start (``charge_krw``), so the charges of a
job's segments always add up to the quote of its whole GPU time, to the won, however it was cut by
preemption; no segment loses or gains a fraction of a won that the next one does not give back.

**Discounts** are what the program states and nothing else: a kind it does not list pays the list
price, and a youth startup gets the program's extra fraction off what remains (0.0 means none). A
fraction outside 0..1 is clamped (the API refuses one before it is stored).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from fractions import Fraction
from types import MappingProxyType

SECONDS_PER_HOUR = 3600
MICROSECONDS_PER_SECOND = 1_000_000
_NO_DISCOUNTS: Mapping[str, float] = MappingProxyType({})


def whole_won(value: int | float) -> int:
    """``value`` as whole won: an ``int``, or a float with no fraction (``2000.0``, as JSON may carry
    it). Anything else is refused rather than rounded, because silently moving money is worse than an
    error at the edge that produced it."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"money is whole won, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"money is whole won, got {value!r}")
    if value < 0:
        raise ValueError(f"money cannot be negative, got {value!r}")
    return int(value)


def round_half_up(amount: Fraction) -> int:
    """The exact ``amount`` rounded to the won, halves up (the commons' single rounding rule)."""
    return math.floor(amount + Fraction(1, 2))


def _fraction(value: float) -> Fraction:
    """A stored fraction (``0.3``) as the decimal it was written as (3/10), not its binary float."""
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


def _clamped(value: float) -> Fraction:
    return min(Fraction(1), max(Fraction(0), _fraction(value)))


@dataclass(frozen=True)
class Pricing:
    """A program's list price in whole won per GPU-hour, the fraction of it waived per institution kind
    (0..1; 1.0 = free) and the further fraction youth startups get off what remains. Only what the
    program states applies: there are no implicit discounts."""

    price_krw_per_gpu_hour: int
    discounts: Mapping[str, float] = field(default_factory=lambda: _NO_DISCOUNTS)
    youth_extra_discount: float = 0.0

    def __post_init__(self) -> None:
        price = self.price_krw_per_gpu_hour
        if isinstance(price, bool) or not isinstance(price, int) or price < 0:
            raise ValueError(f"price_krw_per_gpu_hour must be whole non-negative won, got {price!r}")


@dataclass(frozen=True)
class Rate:
    """What one payer pays per GPU-hour, exactly (list price times the fraction it pays)."""

    krw_per_gpu_hour: Fraction


def payable_fraction(pricing: Pricing, institution_kind: str, youth: bool = False) -> Fraction:
    """Exact fraction of the list price an institution of ``institution_kind`` pays (1 = full price).
    ``youth_startup`` as a kind means a youth startup."""
    kind = institution_kind.lower().replace("-", "_")
    if kind == "youth_startup":
        kind, youth = "startup", True
    pays = 1 - _clamped(pricing.discounts.get(kind, 0.0))
    if youth:
        pays *= 1 - _clamped(pricing.youth_extra_discount)
    return pays


def discount_for(pricing: Pricing, institution_kind: str, youth: bool = False) -> Fraction:
    """Exact fraction of the list price waived (0 = full price)."""
    return 1 - payable_fraction(pricing, institution_kind, youth)


def rate_for(pricing: Pricing, institution_kind: str, youth: bool = False) -> Rate:
    """The rate a payer of ``institution_kind`` (and youth status) pays under ``pricing``."""
    return Rate(pricing.price_krw_per_gpu_hour * payable_fraction(pricing, institution_kind, youth))


def gpu_seconds(gpus: int, held: timedelta) -> Fraction:
    """Exact GPU-seconds of ``gpus`` held for ``held`` (to the microsecond a timestamp keeps); a
    negative span holds nothing."""
    micros = max(0, held // timedelta(microseconds=1))
    return Fraction(gpus * micros, MICROSECONDS_PER_SECOND)


def quote_krw(rate: Rate, gpu_s: Fraction | int) -> int:
    """What ``gpu_s`` GPU-seconds cost at ``rate``, in whole won: the one pricing function."""
    if gpu_s < 0:
        raise ValueError(f"GPU time cannot be negative, got {gpu_s}")
    return round_half_up(rate.krw_per_gpu_hour * Fraction(gpu_s) / SECONDS_PER_HOUR)


def charge_krw(rate: Rate, billed_gpu_s: Fraction | int, gpu_s: Fraction | int) -> int:
    """The charge for ``gpu_s`` more GPU-seconds of a job that has ``billed_gpu_s`` billed under the
    same award: the quote of the total minus the quote of what was billed, so a job's segment
    charges add up to the quote of its whole GPU time."""
    return quote_krw(rate, Fraction(billed_gpu_s) + Fraction(gpu_s)) - quote_krw(rate, billed_gpu_s)
