"""Site power in the cluster file: cap windows parse into the domain's schedule, the cap at a given
instant follows the site's local week (across midnight and the week's end), and bad power input is a
one-line error naming the file and the field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gpucommons.clusterfile import format_window, load_cluster, parse_cluster, parse_days, preset_names
from gpucommons.domain.cluster import Site
from gpucommons.domain.power import WATTS_PER_MW, CapSchedule, CapWindow, PowerModel
from gpucommons.errors import ConfigError

MW = WATTS_PER_MW
KST_H = 9.0

SITE = """
name = "powered"
[[sites]]
name = "gwangju"
power_cap_mw = 10.0
utc_offset_h = {offset}
cap_windows = [{windows}]
[[pools]]
name = "b200"
site = "gwangju"
model = "B200"
nodes = 2
gpus_per_node = 8
{pool_extra}
"""


def cluster_text(windows: str = "", offset: float = KST_H, pool_extra: str = "") -> str:
    return SITE.format(windows=windows, offset=offset, pool_extra=pool_extra)


def site_of(text: str) -> Site:
    return parse_cluster(text, "power.toml").sites[0]


def local_s(text: str, offset_h: float = KST_H) -> float:
    """Epoch seconds of a wall-clock time at a site ``offset_h`` hours ahead of UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() - offset_h * 3600.0


# 2024-01-01 was a Monday.
MON, TUE, FRI, SAT, SUN = "2024-01-01", "2024-01-02", "2024-01-05", "2024-01-06", "2024-01-07"
NEXT_MON = "2024-01-08"


# -- parsing -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("days", "want"),
    [
        ('"mon-fri"', {0, 1, 2, 3, 4}),
        ('["sat", "sun"]', {5, 6}),
        ('"daily"', set(range(7))),
        ('"fri-mon"', {4, 5, 6, 0}),  # a range may wrap over the weekend
        ('"Sun"', {6}),
        ('["mon", "wed-thu"]', {0, 2, 3}),
    ],
)
def test_window_days(days: str, want: set[int]) -> None:
    window = f'{{ days = {days}, start = "14:00", end = "18:00", cap_mw = 6.0 }}'
    site = site_of(cluster_text(window))
    assert site.cap_windows == (CapWindow(frozenset(want), 14 * 60, 18 * 60, 6.0),)
    assert site.utc_offset_h == KST_H


def test_window_may_end_at_midnight_and_pool_states_its_base_draw() -> None:
    text = cluster_text(
        '{ days = "sat", start = "20:30", end = "24:00", cap_mw = 4.5 }', pool_extra="node_base_w = 3500"
    )
    cluster = parse_cluster(text, "power.toml")
    assert cluster.sites[0].cap_windows == (CapWindow(frozenset({5}), 20 * 60 + 30, 24 * 60, 4.5),)
    assert cluster.pool_by_name["b200"].node_base_w == 3500.0
    assert PowerModel().node_base_w(1000.0, 8, cluster.pool_by_name["b200"].node_base_w) == 3500.0


def test_site_without_power_keys_keeps_the_defaults() -> None:
    cluster = load_cluster("demo")
    site = cluster.sites[0]
    assert site.cap_windows == () and site.utc_offset_h == 0.0
    assert all(p.node_base_w is None for p in cluster.pools)


def test_format_window_reads_like_the_file() -> None:
    assert format_window(CapWindow(frozenset(range(5)), 840, 1080, 6.0)) == "mon-fri 14:00-18:00"
    assert format_window(CapWindow(frozenset({5, 6}), 0, 1440, 6.0)) == "sat,sun 00:00-24:00"
    assert format_window(CapWindow(frozenset(range(7)), 0, 60, 6.0)) == "daily 00:00-01:00"
    assert parse_days("mon-sun") == frozenset(range(7))


# -- the cap at given instants --------------------------------------------------------------------------
def schedule(windows: str, offset: float = KST_H) -> CapSchedule:
    return site_of(cluster_text(windows, offset)).cap_schedule


WEEKDAY_AFTERNOONS = '{ days = "mon-fri", start = "14:00", end = "18:00", cap_mw = 6.0 }'


@pytest.mark.parametrize(
    ("local", "want_mw"),
    [
        (f"{MON} 13:59:59", 10.0),
        (f"{MON} 14:00", 6.0),
        (f"{MON} 17:59:59", 6.0),
        (f"{MON} 18:00", 10.0),
        (f"{FRI} 15:00", 6.0),
        (f"{SAT} 15:00", 10.0),
    ],
)
def test_cap_follows_the_local_week(local: str, want_mw: float) -> None:
    assert schedule(WEEKDAY_AFTERNOONS).cap_w_at(local_s(local)) == want_mw * MW


def test_the_same_instant_reads_on_each_sites_clock() -> None:
    instant = local_s(f"{MON} 15:00")  # 15:00 in Korea = 06:00 UTC, before a UTC site's window
    assert schedule(WEEKDAY_AFTERNOONS).cap_w_at(instant) == 6.0 * MW
    assert schedule(WEEKDAY_AFTERNOONS, offset=0.0).cap_w_at(instant) == 10.0 * MW
    new_york = schedule(WEEKDAY_AFTERNOONS, offset=-5.0)
    assert new_york.cap_w_at(local_s(f"{MON} 14:30", offset_h=-5.0)) == 6.0 * MW


def test_next_change_is_the_next_window_edge() -> None:
    caps = schedule(WEEKDAY_AFTERNOONS)
    assert caps.next_change_s(local_s(f"{MON} 09:00")) == local_s(f"{MON} 14:00")
    assert caps.next_change_s(local_s(f"{MON} 14:00")) == local_s(f"{MON} 18:00")
    assert caps.next_change_s(local_s(f"{FRI} 18:00")) == local_s(f"{NEXT_MON} 14:00")  # over the weekend


def test_window_pair_across_midnight() -> None:
    caps = schedule(
        '{ days = "mon", start = "22:00", end = "24:00", cap_mw = 3.0 },'
        ' { days = "tue", start = "00:00", end = "02:00", cap_mw = 3.0 }'
    )
    assert caps.cap_w_at(local_s(f"{MON} 21:59")) == 10.0 * MW
    assert caps.cap_w_at(local_s(f"{MON} 23:59:59")) == 3.0 * MW
    assert caps.cap_w_at(local_s(f"{TUE} 00:00")) == 3.0 * MW
    assert caps.cap_w_at(local_s(f"{TUE} 02:00")) == 10.0 * MW
    assert caps.next_change_s(local_s(f"{MON} 23:00")) == local_s(f"{TUE} 00:00")
    assert caps.next_change_s(local_s(f"{TUE} 00:00")) == local_s(f"{TUE} 02:00")


def test_windows_across_the_end_of_the_week() -> None:
    caps = schedule(
        '{ days = "sun", start = "22:00", end = "24:00", cap_mw = 2.0 },'
        ' { days = "mon", start = "00:00", end = "01:00", cap_mw = 5.0 }'
    )
    assert caps.cap_w_at(local_s(f"{SUN} 23:30")) == 2.0 * MW
    assert caps.cap_w_at(local_s(f"{NEXT_MON} 00:30")) == 5.0 * MW
    assert caps.cap_w_at(local_s(f"{NEXT_MON} 01:00")) == 10.0 * MW
    assert caps.next_change_s(local_s(f"{SUN} 23:30")) == local_s(f"{NEXT_MON} 00:00")
    # After the week's last edge the next change is the first edge of the following week.
    monday_only = schedule('{ days = "mon", start = "01:00", end = "02:00", cap_mw = 5.0 }')
    assert monday_only.next_change_s(local_s(f"{SUN} 12:00")) == local_s(f"{NEXT_MON} 01:00")


def test_uncapped_site_with_a_window_is_capped_only_inside_it() -> None:
    text = cluster_text('{ days = "daily", start = "12:00", end = "13:00", cap_mw = 1.0 }').replace(
        "power_cap_mw = 10.0\n", ""
    )
    caps = site_of(text).cap_schedule
    assert caps.capped
    assert caps.cap_w_at(local_s(f"{SAT} 12:30")) == 1.0 * MW
    assert caps.cap_w_at(local_s(f"{SAT} 13:30")) == float("inf")


# -- bad input ---------------------------------------------------------------------------------------
def window(days: str = '"mon-fri"', start: str = '"14:00"', end: str = '"18:00"', cap: str = "6.0") -> str:
    return f"{{ days = {days}, start = {start}, end = {end}, cap_mw = {cap} }}"


@pytest.mark.parametrize(
    ("name", "text", "want"),
    [
        ("site cap zero", cluster_text().replace("power_cap_mw = 10.0", "power_cap_mw = 0"), "power_cap_mw"),
        (
            "site cap negative",
            cluster_text().replace("power_cap_mw = 10.0", "power_cap_mw = -1"),
            "power_cap_mw",
        ),
        (
            "site cap infinite",
            cluster_text().replace("power_cap_mw = 10.0", "power_cap_mw = inf"),
            "power_cap_mw",
        ),
        ("window cap zero", cluster_text(window(cap="0")), "cap_mw"),
        ("window cap negative", cluster_text(window(cap="-2.5")), "cap_mw"),
        ("window cap missing", cluster_text('{ days = "mon", start = "14:00", end = "18:00" }'), "cap_mw"),
        ("unknown day", cluster_text(window(days='"mon-fry"')), "days"),
        ("empty day list", cluster_text(window(days="[]")), "days"),
        ("days a number", cluster_text(window(days="3")), "days"),
        ("time without colon", cluster_text(window(start='"1400"')), "start"),
        ("time one digit", cluster_text(window(start='"9:00"')), "start"),
        ("minutes 60", cluster_text(window(end='"18:60"')), "end"),
        ("after midnight", cluster_text(window(end='"24:30"')), "end"),
        ("time a number", cluster_text(window(start="14")), "start"),
        ("end before start", cluster_text(window(start='"18:00"', end='"14:00"')), "end must be after start"),
        ("end equals start", cluster_text(window(start='"14:00"', end='"14:00"')), "end must be after start"),
        ("unknown window key", cluster_text(window().replace(" }", ", colour = 1 }")), "colour"),
        (
            "overlapping windows",
            cluster_text(window() + ", " + window(days='"fri"', start='"17:00"', end='"19:00"')),
            "cap windows mon-fri 14:00-18:00 and fri 17:00-19:00 overlap",
        ),
        (
            "same window twice",
            cluster_text(window(days='"daily"') + ", " + window(days='"sat"')),
            "overlap",
        ),
        ("offset too far east", cluster_text(offset=14.5), "utc_offset_h"),
        ("offset too far west", cluster_text(offset=-12.5), "utc_offset_h"),
        ("node base zero", cluster_text(pool_extra="node_base_w = 0"), "node_base_w"),
        ("node base negative", cluster_text(pool_extra="node_base_w = -100"), "node_base_w"),
        (
            "site twice",
            cluster_text() + '[[sites]]\nname = "gwangju"\n',
            "site name 'gwangju' is used twice",
        ),
    ],
)
def test_bad_power_input_is_one_line_naming_file_and_field(name: str, text: str, want: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_cluster(text, "power.toml")
    message = str(err.value)
    assert message.startswith("power.toml: "), name
    assert want in message and "\n" not in message, message


def test_touching_windows_do_not_overlap() -> None:
    site = site_of(cluster_text(window(end='"16:00"') + ", " + window(start='"16:00"', cap="5.0")))
    assert [w.cap_mw for w in site.cap_windows] == [6.0, 5.0]


# -- the Korea preset ----------------------------------------------------------------------------------
def projected_peak_mw(name: str, site: Site) -> float:
    """Every node of the site busy, under the default power model, times the site's PUE."""
    model = PowerModel()
    cluster = load_cluster(name)
    it_w = sum(
        p.node_count
        * (
            p.gpus_per_node * model.device_w(p.model.tdp_w)
            + model.node_base_w(p.model.tdp_w, p.gpus_per_node, p.node_base_w)
        )
        for p in cluster.pools
        if p.site == site.name
    )
    return it_w * site.pue / MW


def test_korea_sites_are_capped_above_their_peak_on_korean_time() -> None:
    cluster = load_cluster("korea-2026")
    assert [s.name for s in cluster.sites] == ["provider-1", "provider-2", "provider-3"]
    for site in cluster.sites:
        assert site.utc_offset_h == KST_H
        assert site.power_cap_mw is not None and 1.0 <= site.pue <= 1.56
        peak = projected_peak_mw("korea-2026", site)
        assert peak < site.power_cap_mw <= 1.15 * peak, site.name
        assert site.power_cap_mw < 10.0  # under the grid-impact assessment threshold


def test_korea_has_a_weekday_afternoon_demand_response_window() -> None:
    cluster = load_cluster("korea-2026")
    windowed = [s for s in cluster.sites if s.cap_windows]
    assert [s.name for s in windowed] == ["provider-2"]
    site = windowed[0]
    caps, base_mw = site.cap_schedule, site.power_cap_mw
    assert base_mw is not None
    assert caps.cap_w_at(local_s(f"{TUE} 13:30")) == 8.0 * MW < projected_peak_mw("korea-2026", site) * MW
    assert caps.cap_w_at(local_s(f"{SAT} 15:00")) == base_mw * MW
    assert caps.cap_w_at(local_s(f"{TUE} 20:00")) == base_mw * MW


def test_scenario_presets_are_not_listed_as_clusters() -> None:
    assert "philly-commons" not in preset_names()
    assert {"philly", "korea-2026", "demo"} <= set(preset_names())
