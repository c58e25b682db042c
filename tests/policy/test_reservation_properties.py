"""Properties of reservations on random clusters, reservations and workloads, replayed through the
simulator under every registered policy (design note 0016):

- during an occurrence's window, the GPUs of its model on nodes that hold no non-preemptible job of
  another tenant never fall below the reservation's GPUs, at every cycle: reserved capacity is never
  given to another tenant's job that cannot be stopped (whether it started in the window or before
  it and would run into it);
- the tenant's gang (of at most the reserved GPUs), submitted at each occurrence's start, starts in
  that very cycle;
- nothing breaks the replay's books: every job ends or waits, and a finished job held its work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpucommons.engine.cycle as engine_cycle
from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.domain.reservation import Reservation
from gpucommons.policy.constraints import Commons
from gpucommons.policy.cycle import schedule as real_schedule
from gpucommons.policy.decisions import CycleResult
from gpucommons.policy.protocols import PolicyConfig
from gpucommons.policy.registry import POLICIES, build_policy
from gpucommons.policy.snapshot import Snapshot
from gpucommons.sim.report_reservations import start_delays
from gpucommons.sim.reservations import ReservationPlan, build_workload
from gpucommons.sim.runner import SimOptions, simulate
from tests.conftest import make_cluster, make_job

TENANTS = "abc"


@st.composite
def clusters(draw: st.DrawFn) -> Cluster:
    return make_cluster(("p", draw(st.integers(2, 6)), draw(st.sampled_from([2, 4, 8]))))


@st.composite
def reservation_plans(draw: st.DrawFn, cluster: Cluster) -> tuple[ReservationPlan, ...]:
    """One or two reservations of whole nodes that fit the cluster together, most with a gang."""
    per_node = cluster.pools[0].gpus_per_node
    nodes_left = len(cluster.nodes)
    plans = []
    for i in range(draw(st.integers(1, 2))):
        if nodes_left < 1:
            break
        nodes = draw(st.integers(1, nodes_left))
        nodes_left -= nodes
        start_s = float(draw(st.integers(0, 60_000)))
        duration_s = float(draw(st.integers(600, 20_000)))
        every_s = draw(st.one_of(st.none(), st.integers(int(duration_s), 60_000).map(float)))
        occurrences = None if every_s is None else draw(st.integers(1, 3))
        reservation = Reservation(
            i + 1,
            f"r{i}",
            nodes * per_node,
            start_s,
            start_s + duration_s,
            lend_idle=draw(st.booleans()),
            every_s=every_s,
            occurrences=occurrences,
        )
        # A gang that uses all of it, part of it, or none: idle reserved GPUs must stay reserved.
        gang = draw(st.one_of(st.none(), st.integers(1, nodes * per_node)))
        plans.append(ReservationPlan(reservation, job_gpus=gang))
    return tuple(plans)


@st.composite
def workloads(draw: st.DrawFn, max_jobs: int = 20) -> list[Job]:
    """Jobs of three tenants; a preemptible one may run past its time limit (the replay does not stop
    it there: it must then be evicted at a window's start), a non-preemptible one never does (a
    backend ends a job at its limit, and nothing else may stop it)."""
    out = []
    for i in range(1, draw(st.integers(1, max_jobs)) + 1):
        duration = float(draw(st.integers(60, 40_000)))
        preemptible = draw(st.booleans())
        limits = [0.5, 1.0, 2.0] if preemptible else [1.0, 1.0, 2.0]
        out.append(
            make_job(
                i,
                draw(st.sampled_from([1, 2, 4, 8])),
                tenant=draw(st.sampled_from(TENANTS)),
                submit_s=float(draw(st.integers(0, 100_000))),
                duration_s=duration,
                estimate_s=duration * draw(st.sampled_from(limits)),
                preemptible=preemptible,
            )
        )
    return out


@contextmanager
def reserved_capacity_checked(violations: list[str]) -> Iterator[None]:
    """Wrap the engine's ``schedule`` to check every cycle's outcome against each open window."""

    def checked(snapshot: Snapshot, config: PolicyConfig, now: float) -> CycleResult:
        result = real_schedule(snapshot, config, now)
        preempted = {p.job_id for p in result.preemptions}
        held = [(r.job, r.placement) for r in snapshot.running.values() if r.job.id not in preempted]
        held += [(s.job, s.placement) for s in result.starts]
        for res in snapshot.reservations:
            window = res.window_at(now)
            if window is None or window[0] > now:
                continue
            pinned = {
                n for job, p in held if job.tenant != res.tenant and not job.preemptible for n in p.nodes
            }
            clean = sum(n.gpus for n in snapshot.cluster.nodes if n.index not in pinned)
            if clean < res.gpus:
                violations.append(f"t={now}: reservation {res.id} has {clean} of {res.gpus} GPUs clean")
        return result

    with mock.patch.object(engine_cycle, "schedule", checked):
        yield


@pytest.mark.parametrize("policy", sorted(POLICIES))
@settings(max_examples=50, deadline=None)
@given(data=st.data(), cluster=clusters(), trace=workloads(), aware=st.booleans())
def test_reserved_capacity_never_goes_to_another_tenants_unstoppable_job(
    policy: str, data: st.DataObject, cluster: Cluster, trace: list[Job], aware: bool
) -> None:
    plans = data.draw(reservation_plans(cluster))
    workload = build_workload(trace, plans, None, 1, cluster, "property")
    options = SimOptions(restart_overhead_s=0.0, reservations=workload.reservations)
    config = build_policy(policy, commons=Commons(checkpoint_aware=aware))
    violations: list[str] = []
    with reserved_capacity_checked(violations):
        result = simulate(workload.jobs, cluster, config, options)
    assert violations == []
    delays = [row["delay_s"] for row in start_delays(result, workload.made)]
    assert delays == [0.0] * len(workload.made), delays
    assert all(r.end_s is not None or r.first_start_s is None or r.preemptions for r in result.records)
    # No restart overhead and no checkpoint model: an eviction loses nothing, so what each finished
    # job held is exactly its work.
    finished = {r.job.id: r.job for r in result.records if r.end_s is not None}
    delivered = sum(s.devices * (s.end_s - s.start_s) for s in result.segments if s.job_id in finished)
    assert result.preemption_loss_gpu_s == 0.0
    assert delivered == pytest.approx(sum(j.gpus * j.duration_s for j in finished.values()))
