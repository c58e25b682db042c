"""Preemption through ``schedule()``: LAS displaces strictly lower queues; quota reclaim displaces only
other tenants' borrowing jobs."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from gpucommons.policy.cycle import schedule
from gpucommons.policy.quota import ReclaimPreemptor
from gpucommons.policy.registry import build_policy
from gpucommons.policy.snapshot import PendingJob, RunningJob
from tests.conftest import free_state, make_cluster, make_job, make_snapshot, pending, running

NOW = 1_000.0
ALL8 = (0, 1, 2, 3, 4, 5, 6, 7)


@dataclass(frozen=True)
class Case:
    name: str
    waiting: tuple[PendingJob, ...]
    busy: tuple[RunningJob, ...]
    want_preempted: tuple[int, ...]
    want_started: tuple[int, ...]
    nodes: int = 1
    gpus_per_node: int = 8


LAS_CASES = [
    Case(
        "a queue-0 job displaces a queue-1 job",
        (pending(make_job(1, 8, submit_s=NOW)),),
        (running(make_job(101, 8), [(0, ALL8)], started_s=0.0),),  # 8,000 GPU-s: queue 1
        want_preempted=(101,),
        want_started=(1,),
    ),
    Case(
        "same queue: no preemption",
        (pending(make_job(1, 8, submit_s=NOW)),),
        (running(make_job(101, 8), [(0, ALL8)], started_s=NOW - 100),),  # 800 GPU-s: queue 0
        want_preempted=(),
        want_started=(),
    ),
    Case(
        "a victim that ran less than min_run_s is spared",
        (pending(make_job(1, 8, submit_s=NOW)),),
        (running(make_job(101, 8), [(0, ALL8)], started_s=NOW - 30, attained_gpu_s=40_000.0),),
        want_preempted=(),
        want_started=(),
    ),
    Case(
        "a non-preemptible job is spared",
        (pending(make_job(1, 8, submit_s=NOW)),),
        (running(make_job(101, 8, preemptible=False), [(0, ALL8)], started_s=0.0),),
        want_preempted=(),
        want_started=(),
    ),
    Case(
        "a pending job in the victim's own queue does not preempt",
        (pending(make_job(1, 8, submit_s=NOW), attained_gpu_s=5_000.0),),
        (running(make_job(101, 8), [(0, ALL8)], started_s=0.0),),
        want_preempted=(),
        want_started=(),
    ),
    Case(
        "only as many victims as needed, the most recently started first",
        (pending(make_job(1, 4, submit_s=NOW)),),
        (
            running(make_job(101, 4), [(0, (0, 1, 2, 3))], started_s=0.0),  # 4,000 GPU-s: queue 1
            running(make_job(102, 4), [(0, (4, 5, 6, 7))], started_s=100.0),  # 3,600 GPU-s: queue 1
        ),
        want_preempted=(102,),
        want_started=(1,),
    ),
    Case(
        "a released victim whose node the placement does not use is given back",
        (pending(make_job(1, 4, submit_s=NOW)),),
        (
            running(make_job(101, 2), [(0, (0, 1))], started_s=0.0, attained_gpu_s=40_000.0),  # queue 2
            running(make_job(102, 2), [(0, (2, 3))], started_s=NOW - 10),  # queue 0: no victim
            running(make_job(103, 4), [(1, (0, 1, 2, 3))], started_s=0.0),  # queue 1
        ),
        want_preempted=(103,),
        want_started=(1,),
        nodes=2,
        gpus_per_node=4,
    ),
]


@pytest.mark.parametrize("case", LAS_CASES, ids=lambda c: c.name)
def test_las_preemption(case: Case) -> None:
    cluster = make_cluster(("p", case.nodes, case.gpus_per_node))
    snapshot = make_snapshot(cluster, case.waiting, case.busy)
    before = free_state(snapshot.capacity)

    result = schedule(snapshot, build_policy("las"), NOW)

    assert tuple(p.job_id for p in result.preemptions) == case.want_preempted
    assert all(p.by_job == 1 for p in result.preemptions)
    assert tuple(s.job.id for s in result.starts) == case.want_started
    if not case.want_started:
        reason = result.reason_for(1)
        assert reason is not None and reason.code == "resources"
    assert free_state(snapshot.capacity) == before


# -- quota reclaim ---------------------------------------------------------------------------------
QUOTAS = {"a": 4, "b": 2, "c": 2}
B_GUARANTEED = running(make_job(201, 2, tenant="b"), [(0, (0, 1))])
C_BORROWING = running(make_job(301, 4, tenant="c"), [(0, (2, 3, 4, 5))], borrowing=True)
A_GUARANTEED = running(make_job(101, 2, tenant="a"), [(0, (6, 7))])


@pytest.mark.parametrize(
    ("name", "job_gpus", "busy", "quotas", "want_preempted", "want_started", "want_borrowing"),
    [
        ("guaranteed job reclaims from another tenant's borrowing job", 2,
         (B_GUARANTEED, C_BORROWING, A_GUARANTEED), QUOTAS, (301,), (1,), False),
        ("a job that would itself borrow does not reclaim", 3,
         (B_GUARANTEED, C_BORROWING, A_GUARANTEED), QUOTAS, (), (), None),
        ("nobody borrows: nothing to reclaim", 2,
         (B_GUARANTEED, running(make_job(302, 4, tenant="c"), [(0, (2, 3, 4, 5))]), A_GUARANTEED), QUOTAS,
         (), (), None),
        ("own tenant's borrowing job is not reclaimed", 2,
         (B_GUARANTEED, running(make_job(102, 4, tenant="a"), [(0, (2, 3, 4, 5))], borrowing=True),
          running(make_job(103, 2, tenant="c"), [(0, (6, 7))])), {"a": 8, "b": 2, "c": 2}, (), (), None),
    ],
)  # fmt: skip
def test_quota_reclaim(
    name: str,
    job_gpus: int,
    busy: tuple[RunningJob, ...],
    quotas: dict[str, int],
    want_preempted: tuple[int, ...],
    want_started: tuple[int, ...],
    want_borrowing: bool | None,
) -> None:
    cluster = make_cluster(("p", 1, 8))
    snapshot = make_snapshot(cluster, (make_job(1, job_gpus, tenant="a", submit_s=NOW),), busy, quotas=quotas)
    before = free_state(snapshot.capacity)

    result = schedule(snapshot, build_policy("quota"), NOW)

    assert tuple(p.job_id for p in result.preemptions) == want_preempted
    assert tuple(s.job.id for s in result.starts) == want_started
    if want_borrowing is not None:
        assert result.starts[0].borrowing is want_borrowing
    assert free_state(snapshot.capacity) == before


def test_reclaim_candidates_are_other_tenants_preemptible_borrowers_newest_first() -> None:
    cluster = make_cluster(("p", 4, 8))
    busy = (
        running(make_job(11, 1, tenant="a"), [(0, (0,))], started_s=30.0, borrowing=True),  # own tenant
        running(make_job(12, 1, tenant="b", preemptible=False), [(0, (1,))], started_s=40.0, borrowing=True),
        running(make_job(13, 1, tenant="c"), [(0, (2,))], started_s=10.0, borrowing=True),
        running(make_job(14, 1, tenant="d"), [(0, (3,))], started_s=20.0, borrowing=True),
        running(make_job(15, 1, tenant="e"), [(0, (4,))], started_s=50.0),  # guaranteed
    )
    snapshot = make_snapshot(cluster, busy=busy)
    job = pending(make_job(1, 8, tenant="a"))
    victims = ReclaimPreemptor().candidates(job, False, snapshot, 100.0)
    assert [v.job.id for v in victims] == [14, 13]
    assert ReclaimPreemptor().candidates(job, True, snapshot, 100.0) == ()


def test_a_borrower_younger_than_the_reclaim_minimum_run_is_spared() -> None:
    cluster = make_cluster(("p", 1, 8))
    busy = (
        running(make_job(21, 1, tenant="b"), [(0, (0,))], started_s=NOW - 10, borrowing=True),
        running(make_job(22, 1, tenant="c"), [(0, (1,))], started_s=NOW - 90, borrowing=True),
    )
    snapshot = make_snapshot(cluster, busy=busy)
    job = pending(make_job(1, 8, tenant="a"))
    assert [v.job.id for v in ReclaimPreemptor().candidates(job, False, snapshot, NOW)] == [21, 22]
    assert [v.job.id for v in ReclaimPreemptor(min_run_s=60).candidates(job, False, snapshot, NOW)] == [22]
