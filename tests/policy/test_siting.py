"""Site preference through ``schedule()``: a job several sites could take goes to the one with the most
power headroom, then the least carbon and price per kWh of IT load; the placer still chooses within it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.cluster import Cluster, Pool, Site
from gpucommons.policy.constraints import Commons
from gpucommons.policy.cycle import schedule
from gpucommons.policy.registry import build_policy
from gpucommons.policy.snapshot import RunningJob
from tests.conftest import make_job, make_snapshot, running

NOW = 1_000.0
SITING = Commons(siting=True)


def two_sites(north: Site, south: Site, nodes: tuple[int, int] = (2, 2)) -> Cluster:
    pools = (
        Pool("n", north.name, CATALOG["H100"], nodes[0], 8),
        Pool("s", south.name, CATALOG["H100"], nodes[1], 8),
    )
    return Cluster.build("two", (north, south), pools)


def site_of_start(cluster: Cluster, result_node: int) -> str:
    return cluster.pool_by_name[cluster.nodes[result_node].pool].site


def started_sites(
    cluster: Cluster,
    jobs: list[int],
    commons: Commons | None = None,
    busy: Sequence[RunningJob] = (),
    gpus: int = 8,
) -> list[str]:
    snapshot = make_snapshot(cluster, [make_job(i, gpus) for i in jobs], busy)
    result = schedule(snapshot, build_policy("fifo", commons=commons or SITING), NOW)
    return [site_of_start(cluster, s.placement.node_gpus[0][0]) for s in result.starts]


def test_the_site_that_cools_better_goes_first() -> None:
    cluster = two_sites(Site("north", pue=1.4), Site("south", pue=1.1))
    assert started_sites(cluster, [1]) == ["south"]


def test_carbon_and_price_count_per_gpu_hour_at_the_site() -> None:
    clean = Site("north", pue=1.3, carbon_g_per_kwh=100.0)
    efficient_but_dirty = Site("south", pue=1.1, carbon_g_per_kwh=400.0)  # 440 > 130 g per IT kWh
    assert started_sites(two_sites(clean, efficient_but_dirty), [1]) == ["north"]
    same_carbon = Site("north", price_krw_per_kwh=100.0), Site("south", price_krw_per_kwh=90.0)
    assert started_sites(two_sites(*same_carbon), [1]) == ["south"]


def test_a_site_near_its_cap_comes_after_one_with_room() -> None:
    # South cools better, and best-fit alone would fill its nearly full node, but a 1-GPU start would
    # leave it with under 10 % of its cap free: north, with room on a busy node, goes first.
    south, north = Site("south", pue=1.1, power_cap_mw=0.0081), Site("north", pue=1.4, power_cap_mw=1.0)
    cluster = two_sites(south, north, nodes=(1, 1))
    busy = [
        running(make_job(100, 7), [(0, tuple(range(7)))]),  # south: 7.39 kW of its 8.1 kW cap
        running(make_job(101, 4), [(1, (0, 1, 2, 3))]),
    ]
    snapshot = make_snapshot(cluster, [make_job(1, 1)], busy)
    for commons, site in ((SITING, "north"), (Commons(siting=False), "south")):
        (start,) = schedule(snapshot, build_policy("fifo", commons=commons), NOW).starts
        assert site_of_start(cluster, start.placement.node_gpus[0][0]) == site


def test_a_busy_node_elsewhere_comes_before_waking_one_at_a_better_site() -> None:
    cluster = two_sites(Site("north", pue=1.4), Site("south", pue=1.1))
    busy = [running(make_job(100, 4), [(0, (0, 1, 2, 3))])]  # a north node with 4 GPUs free
    assert started_sites(cluster, [1, 2], busy=busy, gpus=4) == ["north", "south"]


def test_with_room_everywhere_the_cleaner_site_goes_first_however_full() -> None:
    south, north = Site("south", pue=1.1, power_cap_mw=0.02), Site("north", pue=1.4, power_cap_mw=1.0)
    cluster = two_sites(north, south)
    busy = [running(make_job(100, 8), [(2, tuple(range(8)))])]  # south at 40 % of its cap
    assert started_sites(cluster, [1], busy=busy) == ["south"]


def test_headroom_moves_with_the_starts_of_the_same_cycle() -> None:
    north, south = Site("north", power_cap_mw=0.05), Site("south", power_cap_mw=0.05)
    cluster = two_sites(north, south)
    assert started_sites(cluster, [1, 2, 3, 4]) == ["north", "south", "north", "south"]


def test_a_full_preferred_site_falls_back_to_the_next() -> None:
    cluster = two_sites(Site("north", pue=1.4), Site("south", pue=1.1), nodes=(2, 1))
    busy = [running(make_job(100, 8), [(2, tuple(range(8)))])]  # south's only node is busy
    assert started_sites(cluster, [1], busy=busy) == ["north"]


def test_without_siting_the_placer_chooses_across_sites() -> None:
    cluster = two_sites(Site("north", pue=1.4), Site("south", pue=1.1))
    # best-fit takes the first of equally good nodes: north's
    assert started_sites(cluster, [1], Commons(siting=False)) == ["north"]


def test_a_job_limited_to_one_site_stays_there() -> None:
    cluster = two_sites(Site("north", pue=1.4), Site("south", pue=1.1))
    job = replace(make_job(1, 8), accepted_sites=frozenset({"north"}))
    result = schedule(make_snapshot(cluster, [job]), build_policy("fifo", commons=SITING), NOW)
    assert [site_of_start(cluster, s.placement.node_gpus[0][0]) for s in result.starts] == ["north"]


def test_a_device_that_draws_less_costs_less_for_the_same_gpu_hour() -> None:
    # B200 (1,000 W TDP) at PUE 1.2 draws more per busy GPU than H200 (700 W) at PUE 1.3.
    h200, b200 = Site("h200-site", pue=1.3), Site("b200-site", pue=1.2)
    pools = (Pool("b", b200.name, CATALOG["B200"], 1, 8), Pool("h", h200.name, CATALOG["H200"], 1, 8))
    cluster = Cluster.build("mixed", (b200, h200), pools)
    assert started_sites(cluster, [1]) == ["h200-site"]
