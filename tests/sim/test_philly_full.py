"""The full Philly trace under every policy at load 1: every job ends (slow: a few seconds per policy)."""

from __future__ import annotations

import pytest

from gpucommons.clusterfile import load_cluster
from gpucommons.domain.job import Job
from gpucommons.policy.registry import POLICIES, build_policy
from gpucommons.sim.metrics import summarize
from gpucommons.sim.runner import SimOptions, simulate
from gpucommons.sim.scenario import proportional_quotas
from gpucommons.sim.traces.philly import read_philly
from tests.sim.test_traces import PHILLY_CSV

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PHILLY_CSV.is_file(), reason=f"Philly trace not found at {PHILLY_CSV}"),
]


@pytest.fixture(scope="module")
def philly_jobs() -> list[Job]:
    return read_philly(PHILLY_CSV)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_full_philly_replay_finishes_every_job(policy: str, philly_jobs: list[Job]) -> None:
    cluster = load_cluster("philly")
    options = SimOptions(quota_gpus=proportional_quotas(philly_jobs, cluster.total_gpus))
    result = simulate(philly_jobs, cluster, build_policy(policy), options)
    summary = summarize(result)
    assert summary["jobs_finished"] == summary["jobs_total"] == 82_247
    assert all(r.first_start_s is not None and r.first_start_s >= r.job.submit_s for r in result.records)
    work = sum(j.duration_s * j.gpus for j in philly_jobs)
    delivered = sum(r.run_s * r.job.gpus for r in result.records)
    assert delivered == pytest.approx(work + result.preemption_loss_gpu_s, rel=1e-9)
    assert 0.0 < summary["utilization"] <= 1.0
