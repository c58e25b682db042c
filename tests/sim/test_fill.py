"""The fill experiment on small inputs: stream rules, ratios, determinism and the CLI path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpucommons.cli.app import app
from gpucommons.errors import InvalidRequestError
from gpucommons.policy.registry import build_placer
from gpucommons.sim.fill import fill_stream, job_milli, run_fill
from tests.policy.placement.builders import make_cluster, make_job
from tests.sim.test_openb import NODES, PODS

PODS_SMALL = [
    make_job(1, gpu_milli=500, cpu_milli=1000),
    make_job(2, gpus=2),
    make_job(3, gpus=0, cpu_milli=500),
]


def test_stream_stops_before_passing_the_demand_and_cpu_pods_add_no_demand() -> None:
    stream = fill_stream(PODS_SMALL, cluster_gpus=4, demand=1.3, seed=1)
    total = sum(job_milli(j) for j in stream)
    assert total <= 5200 and total + 500 > 5200
    assert len({j.id for j in stream}) == len(stream)  # drawn pods get fresh ids
    assert stream == fill_stream(PODS_SMALL, cluster_gpus=4, demand=1.3, seed=1)
    assert stream != fill_stream(PODS_SMALL, cluster_gpus=4, demand=1.3, seed=2)


def test_fill_reports_allocation_and_a_curve() -> None:
    cluster = make_cluster(("a", "A100", 2, 2))
    result = run_fill(PODS_SMALL, cluster, build_placer("fgd-plus"), 1.3, seed=3)
    assert result.placed + result.failed == result.arrived
    assert 0 < result.gpu_allocation_ratio <= 1.0
    assert result.arrived_demand <= 1.3 and len(result.curve) == int(result.arrived_demand * 100)
    arrived = [p.arrived_demand for p in result.curve]
    assert arrived == sorted(arrived)
    assert all(0 <= p.fragmentation_ratio <= 1 for p in result.curve)
    again = run_fill(PODS_SMALL, cluster, build_placer("fgd-plus"), 1.3, seed=3)
    assert again == result


def test_bad_demand_is_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="--demand"):
        fill_stream(PODS_SMALL, 4, 0.0, 1)


def test_cli_fill_writes_summary_and_curve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "traces" / "alibaba-gpu-v2023-openb"
    folder.mkdir(parents=True)
    (folder / "openb_node_list_gpu_node.csv").write_text(NODES)
    (folder / "openb_pod_list_default.csv").write_text(PODS)
    monkeypatch.setenv("GPUC_TRACE_DIR", str(tmp_path / "traces"))
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "sim",
            "--trace",
            "openb",
            "--cluster",
            "openb",
            "--mode",
            "fill",
            "--demand",
            "1.3",
            "--placement",
            "best-fit",
            "--seed",
            "7",
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "fill" and 0 < summary["gpu_allocation_ratio"] <= 1
    assert (
        (out / "curve.csv").read_text().startswith("arrived_demand,gpu_allocation_ratio,fragmentation_ratio")
    )
