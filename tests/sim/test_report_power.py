"""Energy, carbon, cost and site power of a replay, on a hand-computed two-site run."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.cluster import Cluster, Pool, Site
from gpucommons.domain.power import CapSchedule, CapWindow, PowerModel
from gpucommons.policy.registry import build_policy
from gpucommons.sim.monitor import J_PER_KWH, PowerMonitor
from gpucommons.sim.report_power import cap_steps_mw, power_figures, power_rows, site_series
from gpucommons.sim.runner import SimOptions, SimResult, simulate
from tests.conftest import make_cluster, make_job

# north: one 8 x A100 node (400 W TDP), PUE 1.2, 100 KRW/kWh, 400 g/kWh.
# south: one 4 x H100 node (700 W TDP), PUE 1.5, 200 KRW/kWh, 50 g/kWh.
TWO_SITES = Cluster.build(
    "two",
    (
        Site("north", pue=1.2, price_krw_per_kwh=100.0, carbon_g_per_kwh=400.0),
        Site("south", pue=1.5, price_krw_per_kwh=200.0, carbon_g_per_kwh=50.0),
    ),
    (Pool("a100", "north", CATALOG["A100"], 1, 8), Pool("h100", "south", CATALOG["H100"], 1, 4)),
)
KINDS = {"u": "university", "s": "startup"}  # tenant "x" has no kind: "unlisted"
# Job 4 asks for 16 GPUs and can never fit; the others run one at a time on their node:
#   north: job 1 (u) 0-3600, job 3 (s, waits 3000 s) 3600-7200, 8 GPUs each;
#   south: job 2 (s) 0-1800 on 4 GPUs, job 5 (u, waits 1500 s) 1800-3000 on 2 GPUs.
JOBS = [
    make_job(1, 8, tenant="u", duration_s=3600.0, models=["A100"]),
    make_job(2, 4, tenant="s", duration_s=1800.0, models=["H100"]),
    make_job(3, 8, tenant="s", submit_s=600.0, duration_s=3600.0, models=["A100"]),
    make_job(4, 16, tenant="x"),
    make_job(5, 2, tenant="u", submit_s=300.0, duration_s=1200.0, models=["H100"]),
]
TWO_SITE_RESULT = simulate(JOBS, TWO_SITES, build_policy("fifo"), SimOptions(tenant_kinds=KINDS))

# The draw formula of domain/power.py by hand: pue * (busy devices * 0.8 * TDP + 0.5 * TDP * node devices).
NORTH_W = 1.2 * (8 * 0.8 * 400 + 0.5 * 400 * 8)  # 4,992 W
SOUTH_FULL_W = 1.5 * (4 * 0.8 * 700 + 0.5 * 700 * 4)  # 5,460 W
SOUTH_HALF_W = 1.5 * (2 * 0.8 * 700 + 0.5 * 700 * 4)  # 3,780 W
NORTH_KWH = NORTH_W * 7200 / 3.6e6  # 9.984
SOUTH_KWH = (SOUTH_FULL_W * 1800 + SOUTH_HALF_W * 1200) / 3.6e6  # 3.99


def test_the_hand_built_run_goes_as_described() -> None:
    timeline = {r.job.id: (r.first_start_s, r.end_s) for r in TWO_SITE_RESULT.records}
    assert timeline == {
        1: (0.0, 3600.0),
        2: (0.0, 1800.0),
        3: (3600.0, 7200.0),
        4: (None, None),
        5: (1800.0, 3000.0),
    }
    assert {(s.job_id, s.site, s.devices) for s in TWO_SITE_RESULT.segments} == {
        (1, "north", 8.0),
        (2, "south", 4.0),
        (3, "north", 8.0),
        (5, "south", 2.0),
    }
    assert TWO_SITE_RESULT.tenant_kinds == KINDS


def test_energy_carbon_cost_and_site_power() -> None:
    figures = power_figures(TWO_SITE_RESULT)
    assert figures["energy_kwh_by_site"] == pytest.approx({"north": 9.984, "south": 3.99})
    assert figures["energy_kwh"] == pytest.approx(NORTH_KWH + SOUTH_KWH) == pytest.approx(13.974)
    assert figures["co2_kg"] == pytest.approx((9.984 * 400 + 3.99 * 50) / 1000)  # 4.1931
    assert figures["cost_krw"] == 1796  # 998.4 + 798.0 won, rounded
    assert isinstance(figures["cost_krw"], int)
    assert figures["peak_site_power_mw"] == pytest.approx({"north": 0.004992, "south": 0.00546})
    # Over the 7,200 s run: north never idles; south averages 14.364 MJ / 7,200 s = 1,995 W.
    assert figures["avg_site_power_mw"] == pytest.approx({"north": 0.004992, "south": 0.001995})


def segment_energy_kwh(result: SimResult) -> dict[str, float]:
    """The draw formula applied to each segment; exact when no node runs two jobs at once (as here)."""
    model = PowerModel()
    cluster = result.cluster
    energy: dict[str, float] = defaultdict(float)
    for seg in result.segments:
        (pool,) = [p for p in cluster.pools if p.site == seg.site and p.model.name == seg.model]
        tdp_w = pool.model.tdp_w
        busy_w = model.device_w(tdp_w) * seg.devices
        base_w = model.node_base_w(tdp_w, pool.gpus_per_node, pool.node_base_w)
        draw_w = cluster.site_by_name[seg.site].pue * (busy_w + base_w)
        energy[seg.site] += draw_w * (seg.end_s - seg.start_s) / J_PER_KWH
    return dict(energy)


def test_monitor_energy_equals_the_formula_summed_over_segments() -> None:
    assert TWO_SITE_RESULT.power.energy_kwh() == pytest.approx(segment_energy_kwh(TWO_SITE_RESULT))


def test_power_rows_one_per_change_per_site() -> None:
    rows = power_rows(TWO_SITE_RESULT.power)
    assert [(r["t_s"], r["site"]) for r in rows] == [
        (0.0, "north"),
        (0.0, "south"),
        (1800.0, "south"),
        (3000.0, "south"),
        (7200.0, "north"),
    ]
    assert [r["power_mw"] for r in rows] == pytest.approx(
        [NORTH_W / 1e6, SOUTH_FULL_W / 1e6, SOUTH_HALF_W / 1e6, 0.0, 0.0]
    )


def monitor_of(changes: list[tuple[float, float]]) -> PowerMonitor:
    monitor = PowerMonitor(make_cluster(("p", 1, 8)))  # one site, "site"
    for t_s, w in changes:
        monitor.observe(t_s, {"site": w})
    return monitor


def test_a_short_series_is_kept_whole() -> None:
    monitor = monitor_of([(0.0, 0.0), (1.0, 5.0), (2.0, 5.0), (3.0, 1.0)])
    assert site_series(monitor, "site", max_rows=3) == ([0.0, 1.0, 3.0], [0.0, 5.0, 1.0])


def test_downsampling_keeps_each_interval_maximum() -> None:
    # 8 changes over 0-10 s cut into 5 intervals of 2 s: [0,2) 0,5 -> 5; [2,4) 1 from 2 s -> 1;
    # [4,6) 7,2 -> 7; [6,8) 2 carried in -> 2; [8,10] 3,0,1 -> 3.
    changes = [
        (0.0, 0.0),
        (1.0, 5.0),
        (2.0, 1.0),
        (4.0, 7.0),
        (5.0, 2.0),
        (8.0, 3.0),
        (9.0, 0.0),
        (10.0, 1.0),
    ]
    assert site_series(monitor_of(changes), "site", max_rows=5) == (
        [0.0, 2.0, 4.0, 6.0, 8.0],
        [5.0, 1.0, 7.0, 2.0, 3.0],
    )


def test_downsampling_counts_the_draw_carried_in_and_merges_equal_rows() -> None:
    # [0,2) 4,1 -> 4; [2,4) 1 carried, 2, 1 -> 2; [4,6) 1 carried, 3 -> 3; [6,8) 1, 2 -> 2;
    # [8,10] 2 carried, 0 -> 2, the same as the row before: merged.
    changes = [
        (0.0, 4.0),
        (1.0, 1.0),
        (2.5, 2.0),
        (3.0, 1.0),
        (5.0, 3.0),
        (6.0, 1.0),
        (7.0, 2.0),
        (10.0, 0.0),
    ]
    assert site_series(monitor_of(changes), "site", max_rows=5) == (
        [0.0, 2.0, 4.0, 6.0],
        [4.0, 2.0, 3.0, 2.0],
    )


def test_a_long_run_stays_within_the_row_limit_and_keeps_its_peak() -> None:
    changes = [(float(t), float((t * 7919) % 1000)) for t in range(50_000)]
    changes[31_337] = (31_337.0, 5_000.0)  # one short spike
    monitor = monitor_of(changes)
    rows = power_rows(monitor)
    assert 0 < len(rows) <= 20_000
    assert max(r["power_mw"] for r in rows) == pytest.approx(5_000.0 / 1e6)
    assert [r["t_s"] for r in rows] == sorted(r["t_s"] for r in rows)


def envelope_by_hand(changes: list[tuple[float, float]], rows: int) -> tuple[list[float], list[float]]:
    """The module docstring's rule, spelled out slowly: each interval's highest draw, equal rows merged."""
    start_s, end_s = changes[0][0], changes[-1][0]
    width_s = (end_s - start_s) / rows
    times_s: list[float] = []
    peaks: list[float] = []
    for i in range(rows):
        lo, hi = start_s + i * width_s, start_s + (i + 1) * width_s
        inside = [w for t, w in changes if lo <= t and (t < hi or i == rows - 1)]
        before = [w for t, w in changes if t < lo]
        on_edge = any(t == lo for t, _ in changes)
        peak = max(inside + (before[-1:] if not on_edge else []))
        if not peaks or peaks[-1] != peak:
            times_s.append(lo)
            peaks.append(peak)
    return times_s, peaks


@given(
    st.lists(st.tuples(st.integers(0, 400), st.sampled_from([0.0, 1.0, 2.0, 5.0])), min_size=2, max_size=40),
    st.integers(1, 12),
)
def test_downsampling_matches_the_rule(points: list[tuple[int, float]], rows: int) -> None:
    by_time = dict(points)  # one draw per instant
    changes: list[tuple[float, float]] = []
    for t, w in sorted(by_time.items()):
        if not changes or changes[-1][1] != w:
            changes.append((t / 4, w))  # quarter-second steps: changes on and between interval edges
    got = site_series(monitor_of(changes), "site", max_rows=rows)
    if len(changes) <= rows:
        assert got == ([t for t, _ in changes], [w for _, w in changes])
    else:
        want_t, want_w = envelope_by_hand(changes, rows)
        assert got[1] == want_w
        assert got[0] == pytest.approx(want_t)


MONDAY_UTC_S = 4 * 86_400.0  # 1970-01-05, the first Monday after the epoch


def test_cap_steps_follow_the_windows() -> None:
    window = CapWindow(days=frozenset({0}), start_min=13 * 60, end_min=17 * 60, cap_mw=8.0)
    schedule = CapSchedule(10.0, (window,))
    start_s, end_s = MONDAY_UTC_S + 12 * 3600, MONDAY_UTC_S + 18 * 3600
    assert cap_steps_mw(schedule, start_s, end_s) == (
        [start_s, MONDAY_UTC_S + 13 * 3600, MONDAY_UTC_S + 17 * 3600, end_s],
        [10.0, 8.0, 10.0, 10.0],
    )
    assert cap_steps_mw(CapSchedule(None), 0.0, 50.0) == ([0.0, 50.0], [float("inf"), float("inf")])
