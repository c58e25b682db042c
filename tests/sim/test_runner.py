"""The simulation loop on hand-computed scenarios."""

from __future__ import annotations

import pytest

from gpucommons.clusterfile import load_cluster
from gpucommons.domain.job import Job
from gpucommons.policy.decisions import CycleResult, Preemption
from gpucommons.policy.registry import build_policy
from gpucommons.sim.runner import SimOptions, _room_for_a_victim, simulate
from gpucommons.sim.store import InMemoryStore
from tests.conftest import make_cluster, make_job

ONE_NODE = make_cluster(("p", 1, 8))


def timeline(
    jobs: list[Job], policy: str = "fifo", **options: float
) -> dict[int, tuple[float | None, float | None]]:
    result = simulate(jobs, ONE_NODE, build_policy(policy), SimOptions(**options))  # type: ignore[arg-type]
    return {r.job.id: (r.first_start_s, r.end_s) for r in result.records}


def test_one_job() -> None:
    result = simulate([make_job(1, 4, submit_s=10.0, duration_s=100.0)], ONE_NODE, build_policy("fifo"))
    (record,) = result.records
    assert (record.first_start_s, record.end_s, record.run_s) == (10.0, 110.0, 100.0)
    assert result.busy_gpu_s == pytest.approx(400.0)
    assert (result.start_s, result.end_s, result.events, result.cycles) == (10.0, 110.0, 2, 1)


def test_jobs_queue_for_a_full_node() -> None:
    jobs = [make_job(1, 8, duration_s=100.0), make_job(2, 8, duration_s=50.0), make_job(3, 4, submit_s=20.0)]
    assert timeline(jobs) == {1: (0.0, 100.0), 2: (100.0, 150.0), 3: (150.0, 250.0)}


def test_backfill_lets_a_short_job_through_in_time() -> None:
    jobs = [
        make_job(1, 6, duration_s=100.0),
        make_job(2, 8, submit_s=1.0, duration_s=100.0),  # waits for job 1; reserved for t=100
        make_job(3, 2, submit_s=2.0, duration_s=50.0),  # ends by t=52: backfills
        make_job(4, 2, submit_s=3.0, duration_s=500.0),  # would delay job 2
    ]
    fifo = timeline(jobs, "fifo")
    backfill = timeline(jobs, "backfill")
    assert fifo[3] == (200.0, 250.0)
    assert backfill[3] == (2.0, 52.0)
    assert backfill[2] == fifo[2] == (100.0, 200.0)
    assert backfill[4][0] == 200.0


def test_las_preemption_costs_the_restart_overhead() -> None:
    jobs = [make_job(1, 8, duration_s=10_000.0), make_job(2, 8, submit_s=1_000.0, duration_s=100.0)]
    result = simulate(jobs, ONE_NODE, build_policy("las"), SimOptions(restart_overhead_s=30.0))
    first, second = result.records
    assert (second.first_start_s, second.end_s) == (1_000.0, 1_100.0)
    assert first.preemptions == 1
    assert first.end_s == pytest.approx(1_100.0 + 9_000.0 + 30.0)
    assert first.run_s == pytest.approx(10_030.0)
    assert result.preemption_loss_gpu_s == pytest.approx(8 * 30.0)


def test_input_order_does_not_matter() -> None:
    jobs = [
        make_job(i, 1 + i % 8, tenant="ab"[i % 2], submit_s=float(i % 7), duration_s=50.0 + i)
        for i in range(1, 40)
    ]
    for policy in ("fifo", "backfill", "fairshare", "las", "quota"):
        forward = simulate(jobs, ONE_NODE, build_policy(policy))
        backward = simulate(list(reversed(jobs)), ONE_NODE, build_policy(policy))
        assert [(r.job.id, r.first_start_s, r.end_s) for r in forward.records] == [
            (r.job.id, r.first_start_s, r.end_s) for r in backward.records
        ], policy


def test_a_job_that_can_never_fit_is_left_pending_and_the_run_ends() -> None:
    result = simulate([make_job(1, 16), make_job(2, 1, submit_s=5.0)], ONE_NODE, build_policy("fifo"))
    never, fits = result.records
    assert never.first_start_s is None and never.end_s is None
    assert fits.end_s == 105.0


def test_no_jobs() -> None:
    result = simulate([], ONE_NODE, build_policy("fifo"))
    assert result.records == [] and result.events == 0 and result.cycles == 0


def test_never_fitting_jobs_do_not_starve_a_fitting_job() -> None:
    jobs = [make_job(i, 16) for i in range(1, 1_002)] + [make_job(5_000, 1, submit_s=1.0)]
    result = simulate(jobs, ONE_NODE, build_policy("fifo"))
    assert result.records[-1].end_s == 101.0


def _preempted(*job_ids: int) -> CycleResult:
    return CycleResult((), tuple(Preemption(j, 99, "displaced") for j in job_ids), ())


def test_a_victim_is_decided_again_at_once_only_where_free_capacity_could_hold_it() -> None:
    store = InMemoryStore(make_cluster(("p", 2, 4)))
    for job in (make_job(1, 2), make_job(2, 8), make_job(3, 4)):
        store.submit(job)
    store.capacity.allocate(0, 3)  # node 0: 1 GPU free, node 1: 4 free
    assert _room_for_a_victim(store, _preempted(1))  # 2 GPUs: node 1 holds it
    assert not _room_for_a_victim(store, _preempted(2))  # 8 GPUs: only 5 free in all
    store.capacity.allocate(1, 1)  # node 1: 3 free
    assert not _room_for_a_victim(store, _preempted(3))  # 4 GPUs fit one node, no node has 4
    assert _room_for_a_victim(store, _preempted(3, 1))  # one of them fits


def test_on_a_mixed_cluster_a_victim_is_always_decided_again_at_once() -> None:
    cluster = load_cluster("hetero-3gen")
    store = InMemoryStore(cluster)
    store.submit(make_job(1, cluster.total_gpus + 1))
    assert cluster.speeds is not None
    assert _room_for_a_victim(store, _preempted(1))
