"""The call turned into tenants and jobs, the pool scaled, targets read and measured."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gpucommons.errors import ConfigError, InvalidRequestError, UnknownNameError
from gpucommons.planner.pool import pool_cost, scaled_cluster
from gpucommons.planner.scenario import load_plan_scenario, parse_plan_scenario, scenario_names
from gpucommons.planner.sizing import between
from gpucommons.planner.targets import parse_target
from gpucommons.planner.workload import MAX_PROJECT_SERVERS, generate_workload
from gpucommons.sim.runner import SimOptions

SMALL = Path(__file__).parent / "small.toml"


def test_the_2026_call_is_the_published_one() -> None:
    plan = load_plan_scenario("korea-2026-call")
    workload = generate_workload(plan.spec, plan.spec.seed)
    funded = [t for t in workload.tenants if t.funded and t.kind != "consortium"]
    unfunded = [t for t in workload.tenants if not t.funded]
    # 159 projects awarded 4,224 GPUs; 514 proposals asked 13,712 (DOMAIN-FACTS 3c [S92]).
    assert len(funded) == 159 and sum(t.gpus for t in funded) == 4224
    assert len(funded) + len(unfunded) == 514
    assert sum(t.gpus for t in funded + unfunded) == 13_712
    academia = [t for t in funded + unfunded if t.kind == "university"]
    assert sum(t.gpus for t in academia) == 8600
    assert all(t.gpus % 8 == 0 and t.gpus <= 8 * MAX_PROJECT_SERVERS for t in funded + unfunded)
    assert workload.guaranteed_gpus == 4224 + 5 * 1024
    assert all(workload.awards()[t.tenant] == () for t in unfunded)


def test_the_workload_follows_the_seed_only() -> None:
    plan = load_plan_scenario(str(SMALL))
    first = generate_workload(plan.spec, 7)
    assert generate_workload(plan.spec, 7) == first
    assert generate_workload(plan.spec, 8).jobs != first.jobs
    period_s = plan.spec.period_days * 86_400
    assert all(0 <= j.submit_s <= period_s and j.gpus <= 16 for j in first.jobs)
    # Each funded tenant offers its use share of its award over the period (to within its last job).
    for tenant in first.tenants:
        offered = sum(j.gpus * j.duration_s for j in first.jobs if j.tenant == tenant.tenant)
        wanted = tenant.use * tenant.gpus * period_s
        biggest = max(j.gpus * j.duration_s for j in first.jobs if j.tenant == tenant.tenant)
        assert wanted <= offered < wanted + biggest


def test_scaling_keeps_the_mix_and_the_npu_share() -> None:
    plan = load_plan_scenario("korea-2026-call")
    cluster = scaled_cluster(plan, 2614)
    assert sum(p.node_count for p in cluster.pools) == 2614
    by_model = {m: sum(p.gpus for p in cluster.pools if p.model.name == m) for m in ("H200", "B200")}
    assert by_model == {"H200": 2 * 2296, "B200": 2 * 8160}
    assert all(s.power_cap_mw is None and not s.cap_windows for s in cluster.sites)
    future = load_plan_scenario("korea-2030")
    npus = sum(p.node_count for p in scaled_cluster(future, 1000).pools if p.model.kind == "npu")
    assert npus == round(1000 * future.spec.npu_share)  # type: ignore[operator]


def test_pool_cost_is_it_times_pue_and_priced_per_gpu() -> None:
    plan = load_plan_scenario(str(SMALL))
    cost = pool_cost(scaled_cluster(plan, 8), {"H200": 10, "B200": 20}, SimOptions().power_model)
    # An 8 x H200 server at 0.8 x 700 W per device + 0.5 x 8 x 700 W base = 7.28 kW; B200: 10.4 kW.
    assert cost.it_mw == pytest.approx((4 * 7280 + 4 * 10_400) / 1e6)
    assert cost.facility_mw == pytest.approx((4 * 7280 * 1.3 + 4 * 10_400 * 1.2) / 1e6)
    assert cost.capex_krw == 32 * 10 + 32 * 20 and cost.capex_unpriced_models == ()


def test_targets_parse_and_count_unfinished_jobs_as_never() -> None:
    groups = load_plan_scenario(str(SMALL)).groups()
    target = parse_target("p90-wait:academia<=24h", groups)
    assert (target.percentile, target.group, target.limit_s) == (90.0, "academia", 86_400.0)
    run = {
        "waits": {
            "university": {"waits_s": list(range(8)), "unfinished": 2},
            "sme": {"waits_s": [5], "unfinished": 0},
        }
    }
    assert target.measure_s(run, groups["academia"]) == math.inf  # 2 of 10 never finished
    assert parse_target("p50-wait:*<=1m", groups).measure_s(run, None) == 5
    assert parse_target("avg-wait:sme<=1s", groups).measure_s(run, ("sme",)) == 5
    for bad in (
        "p90:academia<=24h",
        "p90-wait:academia<24h",
        "p90-wait:academia<=24y",
        "p90-wait:nobody<=1h",
    ):
        with pytest.raises(InvalidRequestError):
            parse_target(bad, groups)


def test_between_splits_the_open_range() -> None:
    assert between(10, 20, 1) == [15]
    assert between(10, 20, 2) == [13, 17]
    assert between(10, 11, 2) == []


def test_shipped_scenarios_load_and_bad_ones_fail_in_one_line(tmp_path: Path) -> None:
    assert {"korea-2026-call", "korea-2028", "korea-2030"} <= set(scenario_names())
    for name in scenario_names():
        load_plan_scenario(name)
    with pytest.raises(UnknownNameError, match="korea-2026-call"):
        load_plan_scenario("korea-2027")
    text = SMALL.read_text()
    for broken, message in (
        (text.replace("period_days = 2", "period_days = -2"), "period_days"),
        (text.replace("seed = 7", "seed = 7\nservres = 3"), "servres"),
        (text.replace('kind = "sme"', 'kind = "smes"'), "unfunded.1"),
        (text.replace('"static", "commons"', '"static", "greedy"'), "greedy"),
        (text + "\n[[", "not valid TOML"),
    ):
        with pytest.raises(ConfigError, match=message) as caught:
            parse_plan_scenario(broken, tmp_path / "s.toml")
        assert "\n" not in str(caught.value)
