"""The ``array-limit`` stage on hand-computed cases: running tasks and this cycle's starts count
against ``%N``, a slot freed by a preemption is not reused in the same cycle, other jobs are not held
and held tasks use no scan limit; and the simulator's store hands the limits to the stage."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

import pytest

from gpucommons.domain.job import Job
from gpucommons.policy.constraints import Commons
from gpucommons.policy.constraints.arrays import ArrayLimitStage
from gpucommons.policy.cycle import schedule
from gpucommons.policy.decisions import CycleResult
from gpucommons.policy.registry import build_policy
from gpucommons.policy.snapshot import RunningJob, Snapshot
from gpucommons.sim.runner import SimOptions, simulate
from tests.conftest import make_cluster, make_job, make_snapshot, most_overlapping, running

ARRAY = 10


def task(job_id: int, gpus: int = 1, array: int = ARRAY, submit_s: float = 0.0) -> Job:
    return replace(make_job(job_id, gpus, submit_s=submit_s), array_id=array)


def decide(
    waiting: Iterable[Job],
    busy: Iterable[RunningJob] = (),
    limits: Mapping[int, int] | None = None,
    policy: str = "fifo",
    commons: Commons | None = None,
) -> tuple[Snapshot, CycleResult]:
    snapshot = make_snapshot(make_cluster(("p", 2, 8)), waiting, busy)
    snapshot = replace(snapshot, array_limits=dict({ARRAY: 2} if limits is None else limits))
    return snapshot, schedule(snapshot, build_policy(policy, commons=commons), 0.0)


def started(result: CycleResult) -> list[int]:
    return sorted(s.job.id for s in result.starts)


def test_running_tasks_count_and_a_held_task_says_why() -> None:
    busy = [running(task(100), [(0, (0,))])]
    _, result = decide([task(1), task(2), task(3)], busy)
    assert started(result) == [1]
    reason = result.reason_for(2)
    assert reason is not None and reason.code == "array-limit"
    assert reason.detail == f"array {ARRAY} has 2 of at most 2 tasks running"
    assert dict(reason.figures) == {"running": 2.0, "limit": 2.0}


@pytest.mark.parametrize(("limit", "want_started"), [(1, 1), (3, 3), (5, 5), (50, 5)])
def test_starts_in_one_cycle_count_against_the_limit(limit: int, want_started: int) -> None:
    _, result = decide([task(i) for i in range(1, 6)], limits={ARRAY: limit})
    assert started(result) == list(range(1, want_started + 1))


def test_other_jobs_and_other_arrays_are_not_held() -> None:
    waiting = [task(1), task(2), task(3), make_job(4), task(5, array=20), task(6, array=30)]
    _, result = decide(waiting, limits={ARRAY: 1, 20: 1})
    assert started(result) == [1, 4, 5, 6]  # array 30 has no limit


def test_held_tasks_use_no_scan_limit() -> None:
    waiting = [task(i) for i in range(1, 21)] + [make_job(99, submit_s=1.0)]
    snapshot = make_snapshot(make_cluster(("p", 2, 8)), waiting)
    snapshot = replace(snapshot, array_limits={ARRAY: 1})
    policy = replace(build_policy("fifo"), scan_limit=3)
    assert started(schedule(snapshot, policy, 0.0)) == [1, 99]


def test_a_slot_a_preemption_frees_is_not_reused_in_the_same_cycle() -> None:
    # Task 100 runs on node 0 beside six free GPUs; node 1 has one free GPU. A high job needing a whole
    # node displaces task 100; task 2 would fit node 1, but the array stays at its limit until the
    # preempted task is gone, at the next cycle.
    victim = running(task(100, 2), [(0, (0, 1))])
    blocker = running(replace(make_job(200, 7), preemptible=False), [(1, tuple(range(7)))])
    high = replace(make_job(1, 8), priority_class="high")
    _, result = decide([high, task(2)], [victim, blocker], limits={ARRAY: 1})
    assert [p.job_id for p in result.preemptions] == [100] and started(result) == [1]
    reason = result.reason_for(2)
    assert reason is not None and reason.code == "array-limit"


def test_the_stage_is_closed_without_limits_and_can_be_switched_off() -> None:
    snapshot, _ = decide([task(1)], limits={})
    assert ArrayLimitStage().open(snapshot, 0.0) is None
    _, result = decide([task(i) for i in range(1, 5)], limits={ARRAY: 1}, commons=Commons(arrays=False))
    assert started(result) == [1, 2, 3, 4]


@pytest.mark.parametrize("policy", ["fifo", "backfill", "fairshare", "las", "quota"])
def test_every_policy_holds_the_limit(policy: str) -> None:
    _, result = decide([task(i) for i in range(1, 9)], limits={ARRAY: 3}, policy=policy)
    assert len(result.starts) == 3


def test_the_simulators_store_feeds_the_limit_and_no_instant_exceeds_it() -> None:
    jobs = [replace(task(i, submit_s=float(i)), duration_s=100.0 + 7 * i) for i in range(1, 13)]
    jobs.append(make_job(50, submit_s=5.0))
    options = SimOptions(restart_overhead_s=0.0, array_limits={ARRAY: 3})
    result = simulate(jobs, make_cluster(("p", 2, 8)), build_policy("fifo"), options)
    spans = [(r.first_start_s, r.end_s) for r in result.records if r.job.array_id == ARRAY]
    assert most_overlapping((a, b) for a, b in spans if a is not None and b is not None) == 3
    assert all(a is not None and b is not None for a, b in spans)  # every task ran to its end
    plain = next(r for r in result.records if r.job.id == 50)
    assert plain.first_start_s == 5.0  # not held behind the array
