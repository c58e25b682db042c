"""The commons' admission stages on hand-computed cases: site draw, power narrowing, acceptance and
eviction, award budgets and models, best-effort tenants, residency, and which refusals count toward
the scan limit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import pytest

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.award import Award
from gpucommons.domain.cluster import Cluster, Pool, Site
from gpucommons.domain.job import Placement
from gpucommons.domain.power import PowerModel
from gpucommons.policy.constraints import Commons
from gpucommons.policy.constraints.draw import SiteDraw
from gpucommons.policy.cycle import schedule
from gpucommons.policy.registry import build_policy
from gpucommons.policy.snapshot import Snapshot
from tests.conftest import make_job, make_snapshot, running

H100_BUSY_W = 700 * 0.8  # one busy device: TDP x utilization
H100_NODE_W = 0.5 * 700 * 8  # a busy 8 x H100 node beside its devices


def two_sites(cap_north_mw: float | None = None, north_sovereign: bool = True) -> Cluster:
    sites = (
        Site("north", sovereign=north_sovereign, power_cap_mw=cap_north_mw, pue=1.5),
        Site("south", sovereign=False, pue=1.0),
    )
    pools = (
        Pool("n", "north", CATALOG["H100"], 2, 8),
        Pool("s", "south", CATALOG["H100"], 2, 8),
    )
    return Cluster.build("two", sites, pools)


def with_awards(snapshot: Snapshot, awards: Mapping[str, Sequence[Award]]) -> Snapshot:
    return replace(snapshot, awards=awards)


def test_site_draw_counts_devices_and_each_busy_node_once_times_pue() -> None:
    cluster = two_sites()
    draw = SiteDraw(cluster, PowerModel())
    added = draw.add(Placement(((0, (0, 1)),)))
    assert added == pytest.approx(1.5 * (2 * H100_BUSY_W + H100_NODE_W))
    draw.add(Placement(((0, (2,)),)))  # same node: no second base power
    assert draw.site_w["north"] == pytest.approx(1.5 * (3 * H100_BUSY_W + H100_NODE_W))
    draw.add(Placement(((2, (0,)),), milli=500))  # half a device in the south, PUE 1
    assert draw.site_w["south"] == pytest.approx(0.5 * H100_BUSY_W + H100_NODE_W)
    draw.remove(Placement(((0, (0, 1)),)))
    draw.remove(Placement(((0, (2,)),)))
    assert draw.site_w["north"] == 0.0


def test_a_capped_site_sends_the_job_to_the_uncapped_one() -> None:
    one_node_w = 1.5 * (8 * H100_BUSY_W + H100_NODE_W)  # 10.92 kW
    cluster = two_sites(cap_north_mw=one_node_w / 1e6 * 1.5)  # room for one busy node, not two
    busy = (running(make_job(100, 8), [(0, tuple(range(8)))]),)
    snapshot = make_snapshot(cluster, (make_job(1, 8),), busy)
    result = schedule(snapshot, build_policy("fifo"), 0.0)
    [start] = result.starts
    assert {cluster.nodes[n].pool for n in start.placement.nodes} == {"s"}


def test_power_refusal_gives_the_sites_figures() -> None:
    cap_mw = 0.005  # 5 kW: not even one busy node at north
    cluster = two_sites(cap_north_mw=cap_mw)
    job = replace(make_job(1, 8), accepted_sites=frozenset({"north"}))
    result = schedule(make_snapshot(cluster, (job,)), build_policy("fifo"), 0.0)
    reason = result.reason_for(1)
    assert reason is not None and reason.code == "power"
    figures = dict(reason.figures)
    assert figures["cap_mw"] == pytest.approx(cap_mw)
    assert figures["draw_mw"] == pytest.approx(1.5 * 8 * H100_BUSY_W / 1e6)  # the cheapest placement
    assert reason.detail == "site north would draw 6.7 kW, cap 5.0 kW"


def test_a_cap_below_the_draw_evicts_the_newest_preemptible_jobs_first() -> None:
    one_node_w = 1.5 * (8 * H100_BUSY_W + H100_NODE_W)
    cluster = two_sites(cap_north_mw=one_node_w * 1.2 / 1e6)  # one node's draw fits, two do not
    busy = (
        running(make_job(100, 8), [(0, tuple(range(8)))], started_s=0.0),
        running(make_job(101, 8, preemptible=False), [(1, tuple(range(8)))], started_s=20.0),
    )
    snapshot = make_snapshot(cluster, (), busy)
    preempting = build_policy("fifo", commons=Commons(power_preempt=True))
    # The newest job (101) may not be preempted: the next newest goes.
    assert [(p.job_id, p.by_job) for p in schedule(snapshot, preempting, 30.0).preemptions] == [(100, 0)]
    assert schedule(snapshot, build_policy("fifo"), 30.0).preemptions == ()  # without power_preempt


def test_award_budget_covers_running_jobs_projected_spend_and_the_job() -> None:
    cluster = two_sites()
    award = Award(7, "a", guaranteed_gpus=0, gpu_hours_budget=10.0, gpu_hours_used=2.0)
    # A running 4-GPU job with one hour of its time limit left projects 4 GPU-hours.
    busy = (replace(running(make_job(100, 4, duration_s=3600.0), [(2, (0, 1, 2, 3))]), award_id=7),)
    fits = make_job(1, 4, duration_s=3600.0)  # needs 4 of the 10 - 2 - 4 = 4 left
    too_big = make_job(2, 4, duration_s=3601.0, submit_s=1.0)
    snapshot = with_awards(make_snapshot(cluster, (fits, too_big), busy), {"a": (award,)})
    result = schedule(snapshot, build_policy("fifo", commons=Commons(awards=True)), 0.0)
    assert [(s.job.id, s.award_id) for s in result.starts] == [(1, 7)]
    reason = result.reason_for(2)
    assert reason is not None and reason.code == "budget"
    assert dict(reason.figures)["left_gpu_hours"] == pytest.approx(0.0)


def test_award_model_narrows_the_job_and_other_models_wait() -> None:
    sites = (Site("x"),)
    pools = (Pool("a100", "x", CATALOG["A100"], 1, 8), Pool("h100", "x", CATALOG["H100"], 1, 8))
    cluster = Cluster.build("mixed", sites, pools)
    awards = {"a": (Award(1, "a", 0, frozenset({"h100"})),)}  # compared case-insensitively
    waiting = (make_job(1, 2), make_job(2, 2, models=("A100",), submit_s=1.0))
    config = build_policy("fifo", commons=Commons(awards=True))
    result = schedule(with_awards(make_snapshot(cluster, waiting), awards), config, 0.0)
    [start] = result.starts
    assert start.job.accepted_models == frozenset({"H100"})
    assert {cluster.nodes[n].pool for n in start.placement.nodes} == {"h100"}
    reason = result.reason_for(2)
    assert reason is not None and reason.code == "award-model"


def test_listed_best_effort_tenant_borrows_and_unlisted_one_waits() -> None:
    cluster = two_sites()
    awards: dict[str, tuple[Award, ...]] = {"listed": ()}
    waiting = (make_job(1, 1, tenant="listed"), make_job(2, 1, tenant="nobody", submit_s=1.0))
    result = schedule(
        with_awards(make_snapshot(cluster, waiting), awards),
        build_policy("quota", commons=Commons(awards=True)),
        0.0,
    )
    assert [(s.job.id, s.borrowing) for s in result.starts] == [(1, True)]
    reason = result.reason_for(2)
    assert reason is not None and reason.code == "no-award"


def test_residency_keeps_a_sovereign_tenants_job_on_sovereign_sites() -> None:
    cluster = two_sites()
    busy = (
        running(make_job(100, 8), [(0, tuple(range(8)))]),
        running(make_job(101, 8), [(1, tuple(range(8)))]),
    )
    snapshot = replace(
        make_snapshot(cluster, (make_job(1, 8, tenant="gov"),), busy), sovereign_tenants=frozenset({"gov"})
    )
    result = schedule(snapshot, build_policy("fifo"), 0.0)
    assert result.starts == ()  # the south has room, but it is not sovereign
    reason = result.reason_for(1)
    assert reason is not None and reason.detail == "no room for 8 GPU(s) on sovereign sites now"
    nowhere = two_sites(north_sovereign=False)
    snapshot = replace(
        make_snapshot(nowhere, (make_job(1, 8, tenant="gov"),)), sovereign_tenants=frozenset({"gov"})
    )
    reason = schedule(snapshot, build_policy("fifo"), 0.0).reason_for(1)
    assert reason is not None and reason.code == "residency"


def test_unfunded_jobs_ahead_do_not_use_up_the_scan_limit() -> None:
    cluster = two_sites()
    unfunded = [make_job(i, 1, tenant="nobody", submit_s=float(i)) for i in range(1, 601)]
    funded = make_job(999, 1, tenant="a", submit_s=1e4)
    awards = {"a": (Award(1, "a", 0),)}
    snapshot = with_awards(make_snapshot(cluster, (*unfunded, funded)), awards)
    result = schedule(snapshot, build_policy("backfill", commons=Commons(awards=True)), 0.0)
    assert [s.job.id for s in result.starts] == [999]
    assert result.others is None  # every job was examined


def test_power_refusals_count_toward_the_scan_limit() -> None:
    cluster = two_sites(cap_north_mw=0.005)
    north_only = frozenset({"north"})
    waiting = [replace(make_job(i, 8, submit_s=float(i)), accepted_sites=north_only) for i in range(1, 601)]
    result = schedule(make_snapshot(cluster, waiting), build_policy("backfill"), 0.0)
    assert len(result.pending) == 500
    assert result.others is not None and result.others.code == "not-examined"
