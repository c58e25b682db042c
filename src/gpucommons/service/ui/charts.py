"""Chart geometry for inline SVG drawn on the server: stacked bars over time and a draw-against-cap
gauge. Pure arithmetic on figures already scoped to the viewer; the templates turn it into SVG, so
the browser needs no chart library and a chart reads without script (each bar titled with its
figure)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# Colour-blind-safe (Okabe-Ito), assigned to groups in name order.
PALETTE = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000")
WIDTH_PX = 640
HEIGHT_PX = 220
LEFT_PX, RIGHT_PX, TOP_PX, BOTTOM_PX = 56, 8, 10, 34
TICKS = 4


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str  # what a pointer over it shows: bucket, group and figure


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class BucketLabel:
    x: float
    text: str


@dataclass(frozen=True)
class Chart:
    """A stacked bar per bucket of time, one segment per group. ``bars`` empty: nothing to show."""

    title: str
    width: float
    height: float
    plot_left: float
    plot_bottom: float
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    buckets: tuple[BucketLabel, ...]
    legend: tuple[tuple[str, str], ...]  # (group, colour)


def short(value: float) -> str:
    """A figure as an axis reads it: ``950``, ``1.2k``, ``3.4M``; below 10 with one decimal."""
    size = abs(value)
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if size >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}" if size >= 10 else f"{value:.2g}"


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least ``value`` (1 for 0)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(step * power for step in (1.0, 2.0, 2.5, 5.0, 10.0) if step * power >= value * (1 - 1e-12))


def stacked_bars(
    title: str,
    points: Sequence[tuple[str, str, float]],
    figure: Callable[[float], str] = short,
) -> Chart:
    """``points`` are (bucket, group, value) with buckets in time order; each bucket gets one bar,
    its groups stacked in name order, heights to one scale from zero to a round maximum."""
    buckets = list(dict.fromkeys(bucket for bucket, _, _ in points))
    groups = sorted({group for _, group, _ in points})
    colour = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}
    values: dict[tuple[str, str], float] = {}
    for bucket, group, value in points:
        values[(bucket, group)] = values.get((bucket, group), 0.0) + value
    totals = [sum(values.get((b, g), 0.0) for g in groups) for b in buckets]
    top = nice_ceiling(max(totals, default=0.0))
    plot_w = WIDTH_PX - LEFT_PX - RIGHT_PX
    plot_h = HEIGHT_PX - TOP_PX - BOTTOM_PX
    bottom = TOP_PX + plot_h
    slot = plot_w / max(len(buckets), 1)
    bars = []
    labels = []
    for i, bucket in enumerate(buckets):
        x = LEFT_PX + i * slot + slot * 0.15
        labels.append(BucketLabel(LEFT_PX + (i + 0.5) * slot, bucket))
        stacked = 0.0
        for group in groups:
            value = values.get((bucket, group), 0.0)
            if value <= 0:
                continue
            height = value / top * plot_h
            stacked += height
            bars.append(
                Bar(
                    x,
                    bottom - stacked,
                    slot * 0.7,
                    height,
                    colour[group],
                    f"{bucket} {group}: {figure(value)}",
                )
            )
    ticks = tuple(Tick(bottom - k / TICKS * plot_h, short(top * k / TICKS)) for k in range(TICKS + 1))
    return Chart(
        title,
        WIDTH_PX,
        HEIGHT_PX,
        LEFT_PX,
        bottom,
        tuple(bars),
        ticks,
        tuple(labels),
        tuple((g, colour[g]) for g in groups),
    )


GAUGE_WIDTH_PX = 320
GAUGE_HEIGHT_PX = 18


@dataclass(frozen=True)
class Gauge:
    """A site's draw as a bar against its cap: ``cap_x`` is where the cap falls (``None``: uncapped);
    ``over`` when the draw exceeds it."""

    width: float
    height: float
    draw_width: float
    cap_x: float | None
    over: bool


def draw_gauge(draw_w: float, cap_w: float | None) -> Gauge:
    """The bar spans the larger of cap and draw, so both always fit."""
    span = max(draw_w, cap_w or 0.0) or 1.0
    return Gauge(
        GAUGE_WIDTH_PX,
        GAUGE_HEIGHT_PX,
        draw_w / span * GAUGE_WIDTH_PX,
        cap_w / span * GAUGE_WIDTH_PX if cap_w is not None else None,
        cap_w is not None and draw_w > cap_w,
    )
