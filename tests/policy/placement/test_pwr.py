"""PWR and FGD+PWR: the paper's node power model on hand-computed states, the choices it drives, the
weighted combination with FGD, and the power the fill experiment reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpucommons.cli.app import app
from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.cluster import Cluster, Pool, Site
from gpucommons.domain.job import Job
from gpucommons.policy.capacity import Capacity
from gpucommons.policy.placement.fgd import FgdPlacer
from gpucommons.policy.placement.pwr import (
    XEON_E5_2682_V4,
    DevicePower,
    FgdPwrPlacer,
    NodePowerModel,
    PowerMeter,
    PwrPlacer,
    fgd_score,
    normalised_pwr,
)
from gpucommons.policy.registry import build_placer
from gpucommons.sim.fill import fill_stream, run_fill
from tests.policy.placement.builders import make_cluster, make_job
from tests.sim.test_openb import NODES, PODS

# make_cluster nodes have 32 vCPUs = 16 cores: one socket for every CPU of the paper's table.
T4_IDLE_NODE = 2 * 10 + 20  # two idle T4s (10 W) and one idle Xeon 8163 socket (20 W)


def _g2_cluster() -> Cluster:
    """One openb G2 node: 8 GPUs (25/250 W), 96 vCPUs = 48 cores on two 32-core Xeon 8369B (20/270 W)."""
    pool = Pool("g2", "s", CATALOG["G2"], 1, 8, cpus_per_node=96, memory_gib_per_node=384)
    return Cluster.build("g2", (Site("s"),), (pool,))


def test_node_power_counts_idle_gpus_and_sockets() -> None:
    capacity = Capacity(make_cluster(("a", "T4", 1, 2)))
    meter = PowerMeter()
    meter.bind(capacity)
    assert meter.node_w(capacity.state_key(0)) == T4_IDLE_NODE
    capacity.allocate_share(0, 0, 100, cpu_milli=500)  # 10 % of one GPU, half a vCPU
    assert meter.node_w(capacity.state_key(0)) == 70 + 10 + 165  # a used GPU and a used socket draw peak


def test_sockets_wake_one_by_one() -> None:
    cluster = _g2_cluster()
    model = NodePowerModel()
    pool = cluster.pools[0]
    idle = [1000] * 8
    assert model.node_w(pool, 96_000, idle) == 8 * 25 + 2 * 20
    assert model.node_w(pool, 94_000, idle) == 8 * 25 + 270 + 20  # 1 core working: one socket awake
    assert model.node_w(pool, 32_000, idle) == 8 * 25 + 270 + 20  # 16 free cores: 32 working, one socket
    assert model.node_w(pool, 30_000, idle) == 8 * 25 + 2 * 270  # 15 free cores: 33 working, both sockets


def test_power_increase_on_an_idle_node_and_on_a_busy_one() -> None:
    capacity = Capacity(make_cluster(("a", "T4", 2, 2)))
    capacity.allocate(1, 1, cpu_milli=4000)  # node 1: one T4 and its socket already busy
    placer = PwrPlacer()
    placer.meter.bind(capacity)
    job = make_job(1, gpus=1, cpu_milli=2000)
    # idle node: 40 W -> a T4 at peak (+60) and the socket awake (+145)
    assert placer.increase(capacity.state_key(0), job, 1000, 1000) == pytest.approx(205)
    # busy node: 245 W -> only the second T4 wakes (+60)
    assert placer.increase(capacity.state_key(1), job, 1000, 1000) == pytest.approx(60)
    placement = placer.place(job, capacity)
    assert placement is not None and placement.nodes == (1,)


def test_pwr_picks_the_node_type_that_adds_least() -> None:
    capacity = Capacity(make_cluster(("v", "V100M32", 1, 4), ("t", "T4", 1, 4)))
    placement = PwrPlacer().place(make_job(1, gpus=1, cpu_milli=1000), capacity)
    # V100: +270 GPU, +165 socket (Xeon 6326); T4: +60 GPU, +145 socket (Xeon 8163)
    assert placement is not None and placement.nodes == (1,)


def test_a_share_goes_onto_a_gpu_that_is_already_busy() -> None:
    capacity = Capacity(make_cluster(("a", "T4", 1, 2)))
    capacity.allocate_share(0, 1, 500, cpu_milli=1000)
    placement = PwrPlacer().place(make_job(1, gpu_milli=300, cpu_milli=1000), capacity)
    assert placement is not None and placement.node_gpus == ((0, (1,)),)  # 0 W more, GPU 0 stays idle


def test_unknown_models_peak_at_their_tdp() -> None:
    model = NodePowerModel()
    assert model.gpu(CATALOG["H100"]) == DevicePower(70.0, 700.0)
    assert model.cpu(CATALOG["H100"]) == XEON_E5_2682_V4
    custom = NodePowerModel(gpus={"H100": DevicePower(60.0, 650.0)}, idle_fraction=0.2)
    assert custom.gpu(CATALOG["H100"]) == DevicePower(60.0, 650.0)
    assert custom.gpu(CATALOG["B200"]) == DevicePower(200.0, 1000.0)


def test_fgd_score_is_the_simulators_sigmoid() -> None:
    assert fgd_score(0.0) == 50.0
    assert fgd_score(1000.0) == pytest.approx(100 / (1 + math.e))
    assert fgd_score(-1000.0) + fgd_score(1000.0) == pytest.approx(100.0)
    assert fgd_score(1e6) >= 0.0 and fgd_score(-1e6) <= 100.0


def test_pwr_scores_normalise_with_integer_division() -> None:
    """The PWR plugin's NormalizeScore: (raw - min) x 100 / (max - min) in integers, all 100 on a tie."""
    assert normalised_pwr([-300, -100, 0]) == [0, 66, 100]
    assert normalised_pwr([-245, -245]) == [100, 100]


def test_combined_score_is_the_integer_weighted_sum() -> None:
    placer = FgdPwrPlacer(pwr_weight=0.1)
    assert placer.weight_milli == 100  # the authors' "PWR 100 FGD 900"
    capacity = Capacity(make_cluster(("t", "T4", 2, 2)))
    placer.observe_workload([make_job(1, gpus=1, cpu_milli=1000)])
    assert placer.place(make_job(2, gpus=1, cpu_milli=1000), capacity) is not None
    empty = (0, 32_000, 256 * 1024, (1000, 1000))
    assert placer.combined(empty) == (100 * 100 + 900 * 50) / 1000  # both nodes alike: PWR 100, FGD 50


def test_combined_score_normalises_pwr_over_the_feasible_nodes() -> None:
    capacity = Capacity(make_cluster(("v", "V100M32", 1, 4), ("t", "T4", 1, 4)))
    placer = FgdPwrPlacer(pwr_weight=0.25)
    placer.observe_workload([make_job(1, gpus=1, cpu_milli=1000)])
    assert placer.place(make_job(2, gpus=1, cpu_milli=1000), capacity) is not None
    dear, cheap = (capacity.state_key(0), capacity.state_key(1))
    # the survey ran on the empty states: the FGD growth is equal, so PWR alone separates them
    empty_v = (0, 32_000, 256 * 1024, (1000, 1000, 1000, 1000))
    empty_t = (1, 32_000, 256 * 1024, (1000, 1000, 1000, 1000))
    assert placer.combined(empty_t) - placer.combined(empty_v) == pytest.approx(0.25 * 100)
    assert dear == empty_v and cheap != empty_t  # the job went to the T4 node


def _mixed_stream() -> list[Job]:
    shapes = [
        make_job(1, gpus=1, cpu_milli=4000),
        make_job(2, gpu_milli=500, cpu_milli=2000),
        make_job(3, gpu_milli=250, cpu_milli=1000),
        make_job(4, gpus=2, cpu_milli=8000),
        make_job(5, gpus=0, cpu_milli=3000),
    ]
    return fill_stream(shapes, cluster_gpus=24, demand=1.2, seed=5)


def test_weight_zero_places_exactly_as_fgd() -> None:
    cluster = make_cluster(("v", "V100M32", 2, 4), ("t", "T4", 2, 4), ("p", "P100", 4, 2))
    stream = _mixed_stream()
    fgd, mixed = FgdPlacer(), FgdPwrPlacer(pwr_weight=0.0)
    for placer in (fgd, mixed):
        placer.observe_workload(stream)
    a, b = Capacity(cluster), Capacity(cluster)
    placements = [(fgd.place(job, a), mixed.place(job, b)) for job in stream]
    assert all(x == y for x, y in placements)
    assert any(x is not None for x, _ in placements) and any(x is None for x, _ in placements)


def test_weight_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="pwr_weight"):
        FgdPwrPlacer(pwr_weight=1.5)


def test_fgd_pwr_draws_less_than_fgd_at_the_same_allocation() -> None:
    # Two pools alike in every way FGD can see; the first (met first on ties) draws far more power.
    cluster = make_cluster(("v", "V100M32", 4, 4), ("t", "T4", 4, 4))
    pods = [make_job(1, gpus=1, cpu_milli=4000), make_job(2, gpu_milli=500, cpu_milli=2000)]
    fgd = run_fill(pods, cluster, build_placer("fgd"), 0.45, seed=3)
    mixed = run_fill(pods, cluster, build_placer("fgd-pwr"), 0.45, seed=3)
    assert fgd.failed == mixed.failed == 0
    assert mixed.gpu_allocation_ratio == fgd.gpu_allocation_ratio
    assert mixed.power_w < fgd.power_w
    same = [(p, q) for p, q in zip(fgd.curve, mixed.curve, strict=True)]
    assert all(q.power_w <= p.power_w for p, q in same) and any(q.power_w < p.power_w for p, q in same)


def test_fill_power_starts_idle_and_never_falls() -> None:
    cluster = make_cluster(("t", "T4", 2, 2))
    pods = [make_job(1, gpu_milli=500, cpu_milli=2000), make_job(2, gpus=1, cpu_milli=1000)]
    result = run_fill(pods, cluster, build_placer("pwr"), 1.0, seed=1)
    watts = [p.power_w for p in result.curve]
    assert watts == sorted(watts) and result.power_w == watts[-1]
    assert PowerMeter().cluster_w(Capacity(cluster)) == 2 * T4_IDLE_NODE < watts[0]


def test_cli_fill_reports_power(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "traces" / "alibaba-gpu-v2023-openb"
    folder.mkdir(parents=True)
    (folder / "openb_node_list_gpu_node.csv").write_text(NODES)
    (folder / "openb_pod_list_default.csv").write_text(PODS)
    monkeypatch.setenv("GPUC_TRACE_DIR", str(tmp_path / "traces"))
    out = tmp_path / "out"
    args = ["sim", "--trace", "openb", "--cluster", "openb", "--mode", "fill", "--placement", "fgd-pwr"]
    result = CliRunner().invoke(app, [*args, "--seed", "7", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "power" in result.output and "kW" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["power_w"] > 0 and 0 < summary["gpu_allocation_ratio"] <= 1
    header, *rows = (out / "curve.csv").read_text().splitlines()
    assert header == "arrived_demand,gpu_allocation_ratio,fragmentation_ratio,power_w"
    assert float(rows[-1].split(",")[-1]) <= summary["power_w"]
