"""The work model in a replay (design note 0009): a job's run time is its work over the speed of the model
it runs on, an award in reference GPU-hours is charged device-hours times that speed, a preempted job
keeps the work it did, and a cluster file states the table; a speed-blind cluster replays as before."""

from __future__ import annotations

import pytest

from gpucommons.clusterfile import parse_cluster
from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.award import REFERENCE_HOURS, Award
from gpucommons.domain.cluster import Cluster, Pool, Site
from gpucommons.domain.speeds import SpeedTable
from gpucommons.errors import ConfigError
from gpucommons.policy.constraints import Commons
from gpucommons.policy.registry import build_policy
from gpucommons.sim.runner import SimOptions, simulate
from tests.conftest import make_job

TABLE = SpeedTable(reference="H100")
AWARDED = build_policy("fifo", commons=Commons(awards=True))


def two_models(speeds: SpeedTable | None = TABLE) -> Cluster:
    pools = (Pool("h100", "site", CATALOG["H100"], 1, 8), Pool("v100", "site", CATALOG["V100M32"], 1, 8))
    return Cluster.build("mixed", (Site("site"),), pools, speeds)


def test_the_same_job_takes_its_work_over_each_models_speed_and_is_charged_by_it() -> None:
    work_s = 3_600.0  # an hour on the reference (H100)
    jobs = [
        make_job(1, 8, tenant="t", duration_s=work_s, estimate_s=4 * work_s, models=["H100"]),
        make_job(2, 8, tenant="t", duration_s=work_s, estimate_s=4 * work_s, models=["V100M32"]),
    ]
    awards = {"t": (Award(1, "t", 16, gpu_hours_budget=1_000.0, unit=REFERENCE_HOURS),)}
    result = simulate(jobs, two_models(), AWARDED, SimOptions(awards=awards))
    on_h100, on_v100 = result.records
    v100_speed = TABLE.speed("llm-pretrain", "V100M32")
    assert v100_speed == pytest.approx(0.6 / 2.0)  # catalog 0.6 of an A100; an H100 trains at 2x an A100
    assert on_h100.run_s == pytest.approx(work_s)
    assert on_v100.run_s == pytest.approx(work_s / v100_speed)
    # Reference GPU-hours: 8 x 1 h on H100, and 8 x (1 / 0.3) h on V100 at 0.3 each: the same work,
    # the same charge.
    assert awards is not None and result.awards is not None
    (award,) = result.awards["t"]
    assert award.gpu_hours_used == pytest.approx(8 * 1.0 + 8 * (1.0 / v100_speed) * v100_speed)
    device = {"t": (Award(1, "t", 16, gpu_hours_budget=1_000.0),)}  # device-hours: wall hours on any model
    by_device = simulate(jobs, two_models(), AWARDED, SimOptions(awards=device))
    assert by_device.awards is not None
    assert by_device.awards["t"][0].gpu_hours_used == pytest.approx(8 * 1.0 + 8 / v100_speed)


def test_a_speed_blind_cluster_runs_every_job_for_its_duration() -> None:
    jobs = [make_job(1, 8, duration_s=100.0, models=["V100M32"])]
    (record,) = simulate(jobs, two_models(speeds=None), build_policy("fifo")).records
    assert record.run_s == 100.0


def test_a_preempted_job_keeps_the_work_it_did_at_its_speed() -> None:
    # LAS preempts job 1 (on the only node, a V100 at 0.3) when job 2 arrives; job 1 then resumes there.
    cluster = Cluster.build("v100", (Site("site"),), (Pool("v100", "site", CATALOG["V100M32"], 1, 8),), TABLE)
    speed = TABLE.speed("llm-pretrain", "V100M32")
    jobs = [make_job(1, 8, duration_s=3_000.0), make_job(2, 8, submit_s=1_000.0, duration_s=30.0)]
    result = simulate(jobs, cluster, build_policy("las"), SimOptions(restart_overhead_s=30.0))
    first, second = result.records
    assert first.preemptions == 1
    assert second.end_s == pytest.approx(1_000.0 + 30.0 / speed)
    left_work = 3_000.0 - 1_000.0 * speed  # the work it did before the preemption is kept
    assert second.end_s is not None
    assert first.end_s == pytest.approx(second.end_s + 30.0 + left_work / speed)


def test_a_cluster_file_states_its_speeds() -> None:
    text = """
name = "mixed"
[[sites]]
name = "s"
[[pools]]
name = "rngd"
site = "s"
model = "RNGD"
nodes = 1
gpus_per_node = 8
[speeds]
reference = "H100"
[speeds.inference]
RNGD = 0.5
"""
    cluster = parse_cluster(text, "mixed.toml")
    assert cluster.speeds is not None and cluster.speeds.reference == "H100"
    assert cluster.run_speed("inference", [0]) == 0.5
    assert cluster.run_speed("llm-pretrain", [0]) == pytest.approx(0.5 / 2.0)
    assert parse_cluster(text.split("[speeds]")[0], "blind.toml").speeds is None


@pytest.mark.parametrize(
    ("speeds", "said"),
    [
        ('[speeds]\nreference = "Z9"', "unknown reference model 'Z9'"),
        ("[speeds.gaming]\nH100 = 1.0", "gaming"),
        ("[speeds.inference]\nZ9 = 1.0", "unknown model 'Z9'"),
        ("[speeds.inference]\nH100 = 0", "need a speed > 0"),
        ('[speeds]\ndefault_class = "mining"', "unknown job class 'mining'"),
    ],
)
def test_a_bad_speeds_table_is_one_line_naming_the_file(speeds: str, said: str) -> None:
    text = 'name = "m"\n[[sites]]\nname = "s"\n[[pools]]\nname = "p"\nsite = "s"\nmodel = "A100"\nnodes = 1\n'
    text += "gpus_per_node = 8\n" + speeds + "\n"
    with pytest.raises(ConfigError, match=said) as refused:
        parse_cluster(text, "bad.toml")
    assert str(refused.value).startswith("bad.toml: ") and "\n" not in str(refused.value)


def test_a_reference_hour_budget_is_checked_at_the_dearest_model_the_job_may_land_on() -> None:
    # A100 is the reference; an H100 trains at 2x, so an hour of 8 H100s costs 16 reference GPU-hours.
    cluster = Cluster.build(
        "mixed",
        (Site("site"),),
        (Pool("h100", "site", CATALOG["H100"], 1, 8), Pool("v100", "site", CATALOG["V100M32"], 1, 8)),
        SpeedTable(),
    )
    budget = 10.0  # enough for 8 V100s for an hour (8 x 0.6 = 4.8), not for 8 H100s (16)
    awards = {"t": (Award(1, "t", 16, gpu_hours_budget=budget, unit=REFERENCE_HOURS),)}
    anywhere = make_job(1, 8, tenant="t", duration_s=600.0, estimate_s=3_600.0)
    only_v100 = make_job(1, 8, tenant="t", duration_s=600.0, estimate_s=3_600.0, models=["V100M32"])
    refused = simulate([anywhere], cluster, AWARDED, SimOptions(awards=awards)).records[0]
    assert refused.first_start_s is None  # it may land on the H100s, which the budget cannot cover
    (ran,) = simulate([only_v100], cluster, AWARDED, SimOptions(awards=awards)).records
    assert ran.first_start_s == 0.0 and ran.end_s == pytest.approx(600.0 / 0.6)
