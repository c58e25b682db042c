"""Checkpoint-aware victim choice (design note 0016): with ``Commons(checkpoint_aware=True)`` LAS
(within a queue), quota's reclaim and priority preemption stop the jobs that lose the least work per
GPU first, then the newest; without it they keep their old order (newest first; LAS: lowest queue)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gpucommons.domain.job import Job
from gpucommons.policy.constraints import Commons
from gpucommons.policy.cycle import schedule
from gpucommons.policy.ordering.las import LasPreemptor
from gpucommons.policy.quota import ReclaimPreemptor
from gpucommons.policy.registry import POLICIES, build_policy
from tests.conftest import make_cluster, make_job, make_snapshot, pending, running

NOW = 100_000.0
HALF = (0, 1, 2, 3)
OTHER_HALF = (4, 5, 6, 7)
AWARE = Commons(checkpoint_aware=True)


def checkpointing(job: Job, interval_s: float) -> Job:
    return replace(job, checkpoint_interval_s=interval_s)


def preempted(
    policy: str, commons: Commons | None, *busy_and_waiting: object, quotas: dict[str, int] | None = None
) -> list[int]:
    busy, waiting = busy_and_waiting
    snapshot = make_snapshot(make_cluster(("p", 1, 8)), waiting, busy, quotas=quotas)  # type: ignore[arg-type]
    result = schedule(snapshot, build_policy(policy, commons=commons), NOW)
    return [p.job_id for p in result.preemptions]


def test_the_switch_reaches_every_preemptor() -> None:
    for name in POLICIES:
        config = build_policy(name)
        assert not config.checkpoint_aware
        aware = build_policy(name, commons=AWARE)
        assert aware.checkpoint_aware
        if isinstance(aware.preemptor, LasPreemptor | ReclaimPreemptor):
            assert aware.preemptor.checkpoint_aware
            assert isinstance(config.preemptor, LasPreemptor | ReclaimPreemptor)
            assert not config.preemptor.checkpoint_aware


def test_las_within_a_queue_takes_the_job_that_loses_least_per_gpu() -> None:
    """Both victims are in the highest queue. Job 101 is older but checkpointed 100 s ago; job 102
    started 2,000 s ago and never checkpoints: the old order takes the newest (102), the aware one 101."""
    older = running(checkpointing(make_job(101, 4), 600.0), [(0, HALF)], started_s=NOW - 50_500)
    newer = running(make_job(102, 4), [(0, OTHER_HALF)], started_s=NOW - 2_000, attained_gpu_s=200_000.0)
    waiting = [pending(make_job(1, 4, submit_s=NOW))]
    assert preempted("las", None, [older, newer], waiting) == [102]
    assert preempted("las", AWARE, [older, newer], waiting) == [101]


def test_las_still_takes_the_lowest_queue_first() -> None:
    """Job 101 is in queue 1 and has just checkpointed; job 102 is in queue 2 and loses more: LAS's
    order of queues stands."""
    low = running(checkpointing(make_job(101, 4), 600.0), [(0, HALF)], started_s=NOW - 1_210)  # 4,840 GPU-s
    high = running(make_job(102, 4), [(0, OTHER_HALF)], started_s=NOW - 10_000)  # 40,000 GPU-s
    waiting = [pending(make_job(1, 4, submit_s=NOW))]
    assert preempted("las", AWARE, [low, high], waiting) == [102]


def test_reclaim_takes_the_borrower_that_loses_least() -> None:
    older = running(
        checkpointing(make_job(101, 4, tenant="b"), 300.0), [(0, HALF)], started_s=NOW - 3_010, borrowing=True
    )
    newer = running(make_job(102, 4, tenant="b"), [(0, OTHER_HALF)], started_s=NOW - 1_000, borrowing=True)
    waiting = [pending(make_job(1, 4, tenant="a", submit_s=NOW))]
    quotas = {"a": 8}
    assert preempted("quota", None, [older, newer], waiting, quotas=quotas) == [102]
    assert preempted("quota", AWARE, [older, newer], waiting, quotas=quotas) == [101]


@pytest.mark.parametrize(("commons", "want"), [(None, [102]), (AWARE, [101])])
def test_priority_preemption_takes_the_lower_job_that_loses_least(
    commons: Commons | None, want: list[int]
) -> None:
    older = running(
        replace(checkpointing(make_job(101, 4), 300.0), priority_class="low"),
        [(0, HALF)],
        started_s=NOW - 3_010,
    )
    newer = running(replace(make_job(102, 4), priority_class="low"), [(0, OTHER_HALF)], started_s=NOW - 1_000)
    urgent = replace(make_job(1, 4, submit_s=NOW), priority_class="high")
    assert preempted("fifo", commons, [older, newer], [pending(urgent)]) == want
