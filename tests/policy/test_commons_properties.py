"""Properties of the commons' stages, on random clusters, caps, cap schedules, awards and jobs, replayed
through the simulator under every registered policy (design note 0006):

- a site's projected draw never exceeds its cap at any instant (the replay's power monitor checks
  every event; caps that fall preempt, so every job here is preemptible);
- a sovereign tenant's job never runs on a non-sovereign site;
- no job starts whose projected spend exceeds its award's remaining budget, and no award is charged
  beyond its budget (time limits are honoured here: estimates cover durations);
- after a reclaim the scheduler's quota equals the award's remaining guarantee;
- shared-GPU and CPU-only jobs start whenever they fit, under every policy, even with no whole GPU
  free.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gpucommons.engine.cycle as engine_cycle
from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.award import Award
from gpucommons.domain.cluster import Cluster, Pool, Site
from gpucommons.domain.job import Job
from gpucommons.domain.power import CapWindow
from gpucommons.policy.constraints import Commons
from gpucommons.policy.constraints.award import needed_gpu_hours
from gpucommons.policy.cycle import schedule as real_schedule
from gpucommons.policy.decisions import CycleResult
from gpucommons.policy.protocols import PolicyConfig
from gpucommons.policy.quota import nominal_quotas
from gpucommons.policy.registry import POLICIES, build_policy
from gpucommons.policy.snapshot import Snapshot
from gpucommons.sim.runner import SimOptions, SimResult, simulate
from gpucommons.store.awards import AwardRow
from gpucommons.store.state_store import award_of
from tests.conftest import make_cluster, make_job, make_snapshot, running

TENANTS = "abc"


@st.composite
def commons_clusters(draw: st.DrawFn) -> Cluster:
    sites = []
    for i in range(draw(st.integers(1, 3))):
        cap = draw(st.one_of(st.none(), st.floats(0.002, 0.05)))  # 2-50 kW: a few nodes at most
        windows: tuple[CapWindow, ...] = ()
        if draw(st.booleans()):
            start = draw(st.integers(0, 22)) * 60
            end = draw(st.integers(start // 60 + 1, 24)) * 60
            days = frozenset(draw(st.sets(st.integers(0, 6), min_size=1)))
            windows = (CapWindow(days, start, end, draw(st.floats(0.001, 0.03))),)
        sites.append(
            Site(
                f"s{i}",
                sovereign=draw(st.booleans()),
                power_cap_mw=cap,
                pue=draw(st.sampled_from([1.0, 1.3, 1.6])),
                cap_windows=windows,
                utc_offset_h=draw(st.sampled_from([0.0, 9.0])),
            )
        )
    pools = [
        Pool(
            f"p{i}",
            sites[draw(st.integers(0, len(sites) - 1))].name,
            CATALOG[draw(st.sampled_from(["A100", "H100"]))],
            draw(st.integers(1, 3)),
            draw(st.sampled_from([1, 2, 4, 8])),
        )
        for i in range(draw(st.integers(1, 4)))
    ]
    return Cluster.build("commons", tuple(sites), tuple(pools))


@st.composite
def commons_jobs(draw: st.DrawFn, max_jobs: int = 20) -> list[Job]:
    out = []
    for i in range(1, draw(st.integers(1, max_jobs)) + 1):
        duration = float(draw(st.integers(60, 40_000)))
        out.append(
            make_job(
                i,
                draw(st.sampled_from([1, 1, 2, 4, 8])),
                tenant=draw(st.sampled_from(TENANTS)),
                submit_s=float(draw(st.integers(0, 200_000))),
                duration_s=duration,
                estimate_s=duration * draw(st.sampled_from([1.0, 1.0, 2.0])),
                models=draw(st.sampled_from([(), (), ("A100",), ("H100",)])),
            )
        )
    return out


@st.composite
def award_tables(draw: st.DrawFn) -> dict[str, tuple[Award, ...]]:
    awards: dict[str, tuple[Award, ...]] = {}
    next_id = 1
    for tenant in TENANTS:
        group = []
        for _ in range(draw(st.integers(0, 2))):
            group.append(
                Award(
                    next_id,
                    tenant,
                    guaranteed_gpus=draw(st.integers(0, 8)),
                    models=draw(st.sampled_from([frozenset(), frozenset({"A100"}), frozenset({"H100"})])),
                    gpu_hours_budget=draw(st.one_of(st.none(), st.floats(0.5, 200.0))),
                )
            )
            next_id += 1
        if group:
            awards[tenant] = tuple(group)
    return awards


@contextmanager
def budget_checked(violations: list[str]) -> Iterator[None]:
    """Wrap the engine's ``schedule`` to check every start against the snapshot's award budgets."""

    def checked(snapshot: Snapshot, config: PolicyConfig, now: float) -> CycleResult:
        result = real_schedule(snapshot, config, now)
        assert snapshot.awards is not None
        left: dict[int, float] = {}
        for awards in snapshot.awards.values():
            for a in awards:
                left[a.id] = a.remaining_gpu_hours
        preempted = {p.job_id for p in result.preemptions}
        for r in snapshot.running.values():
            if r.award_id is not None and r.job.id not in preempted:
                left[r.award_id] -= r.job.gpus * (r.expected_end_s() - r.started_s) / 3600.0
        pending = {p.job.id: p for p in snapshot.pending}
        for start in result.starts:
            if start.award_id is None:
                violations.append(f"job {start.job.id} started without an award at {now}")
                continue
            need = needed_gpu_hours(start.job, pending[start.job.id].attained_gpu_s)
            if need > left[start.award_id] + 1e-6:
                violations.append(f"job {start.job.id} needs {need} > {left[start.award_id]} at {now}")
            left[start.award_id] -= need
            node = snapshot.cluster.nodes[start.placement.nodes[0]]
            award = next(a for g in snapshot.awards.values() for a in g if a.id == start.award_id)
            if not award.pays_for(node.model):
                violations.append(f"job {start.job.id} on {node.model}: award {award.id} pays {award.models}")
        return result

    with mock.patch.object(engine_cycle, "schedule", checked):
        yield


def _replay(
    cluster: Cluster,
    workload: list[Job],
    policy: str,
    awards: dict[str, tuple[Award, ...]] | None,
    sovereign: frozenset[str],
    borrowing: bool,
) -> SimResult:
    commons = Commons(awards=awards is not None, borrowing=borrowing, power_preempt=True)
    options = SimOptions(restart_overhead_s=0.0, awards=awards, sovereign_tenants=sovereign)
    return simulate(workload, cluster, build_policy(policy, commons=commons), options)


@pytest.mark.parametrize("policy", sorted(POLICIES))
@settings(max_examples=25, deadline=None)
@given(
    cluster=commons_clusters(),
    workload=commons_jobs(),
    sovereign=st.frozensets(st.sampled_from(TENANTS)),
    borrowing=st.booleans(),
)
def test_caps_and_residency_hold_at_every_instant(
    policy: str, cluster: Cluster, workload: list[Job], sovereign: frozenset[str], borrowing: bool
) -> None:
    result = _replay(cluster, workload, policy, None, sovereign, borrowing)
    assert result.power.breaches == [], result.power.breaches[:3]
    sovereign_sites = {s.name for s in cluster.sites if s.sovereign}
    tenant_of = {j.id: j.tenant for j in workload}
    for segment in result.segments:
        if tenant_of[segment.job_id] in sovereign:
            assert segment.site in sovereign_sites, segment
    # The cap only ever holds jobs back; it never loses one: each job ends, or waits for a reason.
    assert all(r.end_s is not None or r.first_start_s is None or r.preemptions for r in result.records)


@pytest.mark.parametrize("policy", sorted(POLICIES))
@settings(max_examples=25, deadline=None)
@given(cluster=commons_clusters(), workload=commons_jobs(), awards=award_tables(), borrowing=st.booleans())
def test_no_start_beyond_an_awards_budget(
    policy: str, cluster: Cluster, workload: list[Job], awards: dict[str, tuple[Award, ...]], borrowing: bool
) -> None:
    violations: list[str] = []
    with budget_checked(violations):
        result = _replay(cluster, workload, policy, awards, frozenset(), borrowing)
    assert violations == []
    tenant_of = {j.id: j.tenant for j in workload}
    assert all(tenant_of[segment.job_id] in awards for segment in result.segments)
    assert result.awards is not None
    charged = sum(a.gpu_hours_used for group in result.awards.values() for a in group)
    assert charged == pytest.approx(sum(s.devices * (s.end_s - s.start_s) for s in result.segments) / 3600)
    for group in result.awards.values():
        for a in group:
            assert a.gpu_hours_budget is None or a.gpu_hours_used <= a.gpu_hours_budget + 1e-6


@settings(max_examples=50, deadline=None)
@given(guaranteed=st.integers(0, 64), reclaimed=st.integers(0, 64))
def test_quota_after_a_reclaim_is_the_remaining_guarantee(guaranteed: int, reclaimed: int) -> None:
    """Award rows keep the guarantee left after reclaims in ``guaranteed_gpus`` (``reclaim_unused``
    lowers it and counts the reclaim in ``reclaimed_gpus``); the quota must not subtract it again."""
    now = datetime(2026, 6, 1, tzinfo=UTC)
    row = AwardRow(
        id=1,
        project_id=1,
        program_id=1,
        model="H100",
        gpu_hours_budget=None,
        guaranteed_gpus=max(0, guaranteed - reclaimed),
        reclaimed_gpus=min(guaranteed, reclaimed),
        starts_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=1),
        status="active",
        gpu_hours_used=0.0,
    )
    snapshot = make_snapshot(make_cluster(("p", 1, 8)))
    snapshot = Snapshot(snapshot.cluster, snapshot.capacity, (), {}, awards={"t": (award_of(row, "t"),)})
    assert nominal_quotas(snapshot, now.timestamp()).get("t", 0) == max(0, guaranteed - reclaimed)


@pytest.mark.parametrize("policy", sorted(POLICIES))
@settings(max_examples=20, deadline=None)
@given(milli=st.sampled_from([100, 250, 500]), cpu_only=st.booleans(), whole_waiting=st.integers(1, 30))
def test_shared_and_cpu_only_jobs_start_when_no_whole_gpu_is_free(
    policy: str, milli: int, cpu_only: bool, whole_waiting: int
) -> None:
    cluster = make_cluster(("p", 2, 2))
    busy = [
        running(make_job(101, 2, tenant="x"), [(0, (0, 1))]),
        running(make_job(102, 1, tenant="x"), [(1, (0,))]),
    ]
    waiting = [make_job(i, 1, submit_s=float(i)) for i in range(1, whole_waiting + 1)]
    small = (
        Job(999, "b", 0, 1e6, 60.0, 60.0, cpu_milli=1000)
        if cpu_only
        else Job(999, "b", 1, 1e6, 60.0, 60.0, gpu_milli=min(milli, 500))
    )
    full = make_snapshot(cluster, [*waiting, small], busy)
    full.capacity.allocate_share(1, 1, 500)  # node 1's second GPU holds a share: no whole GPU is free
    assert full.capacity.free_total == 0
    result = real_schedule(full, build_policy(policy), 1e6 + 1)
    assert 999 in [s.job.id for s in result.starts]  # (LAS may also preempt for a whole-GPU job)
