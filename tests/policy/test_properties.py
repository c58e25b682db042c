"""Properties of the core under every registered policy, on random small clusters and job mixes run
through the simulator.

Every cycle is checked as it happens (``schedule`` is wrapped where the engine calls it):
- the Capacity handed to ``schedule`` agrees with the running jobs' placements (no GPU used twice, no
  node over its GPU count, free counts and best-fit buckets consistent), and is unchanged on return;
- each Start takes exactly ``job.gpus`` free GPUs (plus those of the jobs it displaces), honours
  ``gpus_per_node`` and accepted models, keeps a multi-node gang inside one pool, and is not before the
  job's arrival;
- each Preemption follows the policy's victim rules.
After the run: every job that can fit ends and no other job starts; delivered GPU-seconds equal the
work plus the recorded preemption loss.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpucommons.engine.cycle as engine_cycle
import gpucommons.sim.runner as sim_runner
from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.policy.capacity import Capacity
from gpucommons.policy.cycle import schedule as real_schedule
from gpucommons.policy.decisions import CycleResult
from gpucommons.policy.ordering.las import LasPreemptor
from gpucommons.policy.protocols import PolicyConfig
from gpucommons.policy.quota import ReclaimPreemptor
from gpucommons.policy.registry import POLICIES, build_policy
from gpucommons.policy.snapshot import Snapshot
from gpucommons.sim.runner import SimOptions, SimResult, simulate
from tests.conftest import free_state, make_cluster, make_job

RESTART_OVERHEAD_S = 30.0


# -- strategies ------------------------------------------------------------------------------------
@st.composite
def clusters(draw: st.DrawFn) -> Cluster:
    pools = [
        (
            f"p{i}",
            draw(st.integers(1, 4)),
            draw(st.sampled_from([1, 2, 4, 8])),
            draw(st.sampled_from(["A100", "H100"])),
        )
        for i in range(draw(st.integers(1, 3)))
    ]
    return make_cluster(*pools)


@st.composite
def jobs(draw: st.DrawFn, max_jobs: int = 25) -> list[Job]:
    out = []
    for i in range(1, draw(st.integers(1, max_jobs)) + 1):
        gpus = draw(st.sampled_from([1, 1, 1, 1, 2, 3, 4, 6, 8, 12, 16]))
        per_node = draw(st.sampled_from([None, None, None, 1, 2, 3, 4, 8]))
        duration = float(draw(st.integers(1, 4_000)))
        out.append(
            make_job(
                i,
                gpus,
                tenant=draw(st.sampled_from("abc")),
                submit_s=float(draw(st.integers(0, 3_000))),
                duration_s=duration,
                estimate_s=duration * draw(st.sampled_from([0.5, 1.0, 1.0, 3.0])),
                gpus_per_node=per_node,
                models=draw(st.sampled_from([(), (), ("A100",), ("H100",), ("B200",), ("A100", "H100")])),
                preemptible=draw(st.booleans() | st.just(True)),
            )
        )
    return out


quotas = st.dictionaries(st.sampled_from("abc"), st.integers(0, 24), max_size=3)


# -- an independent "can this job ever fit" oracle -------------------------------------------------
def can_fit(job: Job, cluster: Cluster) -> bool:
    for pool in cluster.pools:
        if job.accepted_models and pool.model.name not in job.accepted_models:
            continue
        per = job.gpus_per_node
        if per is None and job.gpus <= pool.gpus:
            return True
        if (
            per is not None
            and per <= pool.gpus_per_node
            and job.gpus % per == 0
            and job.gpus // per <= pool.node_count
        ):
            return True
    return False


# -- per-cycle checks ------------------------------------------------------------------------------
def check_capacity(snapshot: Snapshot) -> None:
    cluster, capacity = snapshot.cluster, snapshot.capacity
    used: dict[int, set[int]] = {n.index: set() for n in cluster.nodes}
    for r in snapshot.running.values():
        for index, gpus in r.placement.node_gpus:
            assert used[index].isdisjoint(gpus), f"GPU used twice on node {index}"
            used[index].update(gpus)
    for node in cluster.nodes:
        free = set(capacity.free_indices(node.index))
        assert used[node.index] | free == set(range(node.gpus)), f"node {node.index}"
        assert used[node.index].isdisjoint(free)
        assert capacity.free_gpus(node.index) == len(free) <= node.gpus
        assert node.index in capacity.nodes_with_free(capacity.pool_of[node.index], len(free))
    assert capacity.free_total == sum(capacity.free_gpus(n.index) for n in cluster.nodes)


def check_decisions(snapshot: Snapshot, config: PolicyConfig, now: float, result: CycleResult) -> None:
    cluster = snapshot.cluster
    waiting = {p.job.id: p for p in snapshot.pending}
    free = {n.index: set(snapshot.capacity.free_indices(n.index)) for n in cluster.nodes}
    starts = {s.job.id: s for s in result.starts}
    assert len(starts) == len(result.starts), "a job started twice"

    preempted = [p.job_id for p in result.preemptions]
    assert len(set(preempted)) == len(preempted), "a job preempted twice"
    if config.preemptor is None:
        assert not preempted
    for p in result.preemptions:
        victim = snapshot.running[p.job_id]
        by = waiting[p.by_job]
        assert p.by_job in starts, "a preemption that starts nothing"
        assert victim.job.preemptible
        for node, gpus in victim.placement.node_gpus:
            free[node].update(gpus)
        if isinstance(config.preemptor, LasPreemptor):
            level = config.preemptor.queues.level
            assert level(victim.attained_at(now)) > level(by.attained_gpu_s)
            assert now - victim.started_s >= config.preemptor.min_run_s
        if isinstance(config.preemptor, ReclaimPreemptor):
            assert victim.borrowing and victim.job.tenant != by.job.tenant
            assert not starts[p.by_job].borrowing

    for start in result.starts:
        job, placement = start.job, start.placement
        assert job.id in waiting and job.id not in snapshot.running
        assert now >= job.submit_s, "started before it arrived"
        assert can_fit(job, cluster)
        assert placement.gpus == job.gpus
        nodes = placement.nodes
        assert len(set(nodes)) == len(nodes)
        if job.gpus_per_node is not None:
            assert all(len(g) == job.gpus_per_node for _, g in placement.node_gpus)
        assert len({cluster.nodes[n].pool for n in nodes}) == 1, "a gang spans pools"
        for node, gpus in placement.node_gpus:
            assert job.accepts(cluster.nodes[node].model)
            assert len(set(gpus)) == len(gpus) and set(gpus) <= free[node], f"GPU not free on node {node}"
            free[node].difference_update(gpus)


@contextmanager
def checked_cycles() -> Iterator[list[float]]:
    """Wrap ``schedule`` wherever the simulator reaches it; yields the list of cycle times seen."""
    seen: list[float] = []

    def wrapper(snapshot: Snapshot, config: PolicyConfig, now: float) -> CycleResult:
        check_capacity(snapshot)
        before = (free_state(snapshot.capacity), snapshot.capacity.free_total)
        buckets = bucket_sets(snapshot.capacity)
        result = real_schedule(snapshot, config, now)
        assert (free_state(snapshot.capacity), snapshot.capacity.free_total) == before, "snapshot changed"
        assert bucket_sets(snapshot.capacity) == buckets
        check_decisions(snapshot, config, now, result)
        seen.append(now)
        return result

    with ExitStack() as stack:
        for module in (engine_cycle, sim_runner):
            if hasattr(module, "schedule"):
                stack.enter_context(mock.patch.object(module, "schedule", wrapper))
        yield seen


def bucket_sets(capacity: Capacity) -> list[list[frozenset[int]]]:
    return [
        [frozenset(capacity.nodes_with_free(p, k)) for k in range(pool.gpus_per_node + 1)]
        for p, pool in enumerate(capacity.cluster.pools)
    ]


# -- end-of-run checks -----------------------------------------------------------------------------
def check_result(jobs: list[Job], cluster: Cluster, config: PolicyConfig, result: SimResult) -> None:
    records = {r.job.id: r for r in result.records}
    assert sorted(records) == sorted(j.id for j in jobs)
    work = 0.0
    for job in jobs:
        rec = records[job.id]
        if not can_fit(job, cluster):
            assert rec.first_start_s is None and rec.end_s is None and rec.run_s == 0.0
            continue
        work += job.duration_s * job.gpus
        assert rec.end_s is not None, f"job {job.id} can fit but never ended"
        assert rec.first_start_s is not None and rec.first_start_s >= job.submit_s
        assert rec.run_s >= job.duration_s - 1e-6
        assert rec.end_s - rec.first_start_s >= rec.run_s - 1e-6
        if config.preemptor is None:
            assert rec.preemptions == 0
            assert rec.run_s == pytest.approx(job.duration_s)
    delivered = sum(r.run_s * r.job.gpus for r in result.records)
    tol = 1e-9 * max(1.0, work) + 1e-6
    assert delivered == pytest.approx(work + result.preemption_loss_gpu_s, abs=tol)
    restarts_gpu = sum(r.preemptions * r.job.gpus for r in result.records)
    assert result.preemption_loss_gpu_s == pytest.approx(RESTART_OVERHEAD_S * restarts_gpu)
    assert result.busy_gpu_s == pytest.approx(delivered, abs=tol)


def check_fifo_line(jobs: list[Job], cluster: Cluster, result: SimResult) -> None:
    """Under a strict line no job starts before one that arrived ahead of it."""
    starts = {r.job.id: r.first_start_s for r in result.records}
    line = sorted((j for j in jobs if can_fit(j, cluster)), key=lambda j: (j.submit_s, j.id))
    first = [starts[j.id] for j in line]
    assert all(a is not None and b is not None and a <= b for a, b in itertools.pairwise(first))


def run_checked(policy: str, cluster: Cluster, workload: list[Job], quota: dict[str, int]) -> None:
    config = build_policy(policy)
    options = SimOptions(restart_overhead_s=RESTART_OVERHEAD_S, quota_gpus=quota)
    with checked_cycles() as cycles:
        result = simulate(workload, cluster, config, options)
    if any(can_fit(j, cluster) for j in workload):
        assert cycles, "schedule was never reached through the engine"
    check_result(workload, cluster, config, result)
    if policy == "fifo":
        check_fifo_line(workload, cluster, result)


@pytest.mark.parametrize("policy", sorted(POLICIES))
@settings(max_examples=60)
@given(cluster=clusters(), workload=jobs(), quota=quotas)
def test_core_invariants(policy: str, cluster: Cluster, workload: list[Job], quota: dict[str, int]) -> None:
    run_checked(policy, cluster, workload, quota)


@pytest.mark.slow
@pytest.mark.parametrize("policy", sorted(POLICIES))
@settings(max_examples=150)
@given(cluster=clusters(), workload=jobs(max_jobs=80), quota=quotas)
def test_core_invariants_many(
    policy: str, cluster: Cluster, workload: list[Job], quota: dict[str, int]
) -> None:
    run_checked(policy, cluster, workload, quota)


@pytest.mark.parametrize(
    ("policy", "workload", "quota"),
    [
        ("las", [make_job(1, 8, duration_s=10_000), make_job(2, 8, submit_s=1_000, duration_s=100)], {}),
        (
            "quota",
            [
                make_job(1, 8, tenant="b", duration_s=10_000),
                make_job(2, 8, tenant="a", submit_s=100, duration_s=100),
            ],
            {"a": 8},
        ),
    ],
)
def test_checks_see_preemptions(policy: str, workload: list[Job], quota: dict[str, int]) -> None:
    """The per-cycle victim checks run on a preemption each preempting policy must make."""
    cluster = make_cluster(("p", 1, 8))
    with checked_cycles():
        result = simulate(
            workload, cluster, build_policy(policy), SimOptions(RESTART_OVERHEAD_S, quota_gpus=quota)
        )
    assert [r.preemptions for r in result.records] == [1, 0]
    check_result(workload, cluster, build_policy(policy), result)
