"""The dashboard's chart geometry: stacked bars in proportion to their figures on a round scale, one
colour per group, and a draw-against-cap gauge in which both always fit."""

from __future__ import annotations

import pytest

from gpucommons.service.ui.charts import HEIGHT_PX, TOP_PX, draw_gauge, nice_ceiling, short, stacked_bars


@pytest.mark.parametrize(
    ("value", "want"), [(0.0, 1.0), (0.7, 1.0), (1.0, 1.0), (1.2, 2.0), (2.1, 2.5), (3.0, 5.0), (62.0, 100.0)]
)
def test_the_scale_tops_out_at_a_round_figure(value: float, want: float) -> None:
    assert nice_ceiling(value) == pytest.approx(want)


@pytest.mark.parametrize(
    ("value", "want"), [(0.25, "0.25"), (7.5, "7.5"), (950.0, "950"), (1234.0, "1.23k"), (3.4e6, "3.4M")]
)
def test_axis_figures_are_short(value: float, want: str) -> None:
    assert short(value) == want


def test_each_bucket_stacks_its_groups_in_proportion_on_one_scale() -> None:
    chart = stacked_bars(
        "GPU-hours", [("2026-01", "beta", 30.0), ("2026-01", "alpha", 10.0), ("2026-02", "alpha", 50.0)]
    )
    assert [label.text for label in chart.buckets] == ["2026-01", "2026-02"]
    assert dict(chart.legend).keys() == {"alpha", "beta"}
    january = [b for b in chart.bars if b.title.startswith("2026-01")]
    (february,) = (b for b in chart.bars if b.title.startswith("2026-02"))
    alpha, beta = january  # stacked in name order, alpha at the bottom
    assert alpha.height * 3 == pytest.approx(beta.height)
    assert alpha.y == pytest.approx(beta.y + beta.height)  # beta sits on alpha
    assert alpha.y + alpha.height == pytest.approx(chart.plot_bottom)
    assert february.height == pytest.approx(alpha.height * 5)  # one scale for every bucket: top 50
    assert february.y == pytest.approx(TOP_PX)  # 50 is the round top itself
    assert chart.ticks[-1].label == "50" and chart.ticks[0].label == "0"
    assert alpha.colour == february.colour != beta.colour
    assert february.title == "2026-02 alpha: 50"


def test_nothing_to_chart_has_no_bars() -> None:
    chart = stacked_bars("Energy", [])
    assert chart.bars == () and chart.buckets == () and chart.height == HEIGHT_PX


@pytest.mark.parametrize(
    ("draw_w", "cap_w", "draw_px", "cap_px", "over"),
    [
        (50.0, 100.0, 160.0, 320.0, False),
        (150.0, 100.0, 320.0, 320 / 1.5, True),
        (10.0, None, 320.0, None, False),
    ],
)
def test_a_gauge_fits_both_draw_and_cap(
    draw_w: float, cap_w: float | None, draw_px: float, cap_px: float | None, over: bool
) -> None:
    gauge = draw_gauge(draw_w, cap_w)
    assert gauge.draw_width == pytest.approx(draw_px)
    assert gauge.cap_x == (pytest.approx(cap_px) if cap_px is not None else None)
    assert gauge.over is over
    assert draw_gauge(0.0, None).draw_width == 0.0
