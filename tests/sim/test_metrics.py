"""Summary figures on a hand-computed run."""

from __future__ import annotations

import pytest

from gpucommons.policy.registry import build_policy
from gpucommons.sim.metrics import jain, job_rows, summarize, tenant_rows
from gpucommons.sim.runner import simulate
from tests.conftest import make_cluster, make_job

# One 8-GPU node, two whole-node jobs of 100 s submitted together: b's waits 100 s.
RESULT = simulate(
    [make_job(1, 8, tenant="a", duration_s=100.0), make_job(2, 8, tenant="b", duration_s=100.0)],
    make_cluster(("p", 1, 8)),
    build_policy("fifo"),
)


def test_summary_figures() -> None:
    s = summarize(RESULT)
    assert (s["jobs_total"], s["jobs_finished"]) == (2, 2)
    assert s["avg_jct_s"] == pytest.approx(150.0)
    assert s["avg_wait_s"] == pytest.approx(50.0)
    assert s["p99_wait_s"] == pytest.approx(99.0)
    assert s["avg_bounded_slowdown"] == pytest.approx(1.5)
    assert s["makespan_s"] == pytest.approx(200.0)
    assert s["jain_fairness"] == pytest.approx(1.5**2 / (2 * (1.0 + 0.25)))
    assert s["preemptions"] == 0 and s["preemption_loss_gpu_s"] == 0.0
    assert RESULT.busy_gpu_s == pytest.approx(1_600.0)


def test_rows() -> None:
    jobs = job_rows(RESULT)
    assert [(r["job_id"], r["jct_s"], r["wait_s"]) for r in jobs] == [(1, 100.0, 0.0), (2, 200.0, 100.0)]
    tenants = tenant_rows(RESULT)
    assert [(r["tenant"], r["jobs"], r["service"]) for r in tenants] == [("a", 1, 1.0), ("b", 1, 0.5)]
    assert tenants[0]["gpu_hours"] == pytest.approx(800.0 / 3600.0)


@pytest.mark.parametrize(
    ("values", "want"),
    [
        ([], 1.0),
        ([0.7], 1.0),
        ([1.0, 1.0, 1.0], 1.0),
        ([1.0, 0.0], 0.5),
        ([1.0, 0.0, 0.0, 0.0], 0.25),
        ([0.0, 0.0], 1.0),
    ],
)
def test_jain(values: list[float], want: float) -> None:
    assert jain(values) == pytest.approx(want)
