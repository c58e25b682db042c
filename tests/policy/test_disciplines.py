"""Queue disciplines through ``schedule()``: strict line, EASY backfill, skip-ahead, never-fits."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gpucommons.domain.job import Job
from gpucommons.policy.cycle import schedule
from gpucommons.policy.registry import build_policy
from gpucommons.policy.snapshot import RunningJob
from tests.conftest import free_state, make_cluster, make_job, make_snapshot, running

ONE_NODE = make_cluster(("p", 1, 8))

# Two running jobs on the 8-GPU node: 4 GPUs until t=100, 2 GPUs until t=1000 (by their estimates).
# GPUs 6 and 7 are free at t=0.
R_SHORT = running(make_job(101, 4, duration_s=100), [(0, (0, 1, 2, 3))])
R_LONG = running(make_job(102, 2, duration_s=1000), [(0, (4, 5))])


@dataclass(frozen=True)
class Case:
    name: str
    policy: str
    waiting: tuple[Job, ...]
    busy: tuple[RunningJob, ...] = (R_SHORT, R_LONG)
    want_started: tuple[int, ...] = ()
    want_reasons: dict[int, str] = field(default_factory=dict)
    want_blocking: dict[int, int] = field(default_factory=dict)


CASES = [
    Case(
        "fifo: every job fits, all start in order",
        "fifo",
        (make_job(1, 1), make_job(2, 1, submit_s=1)),
        want_started=(1, 2),
    ),
    Case(
        "fifo: a blocked head holds the line",
        "fifo",
        (make_job(1, 6), make_job(2, 1, submit_s=1, duration_s=10)),
        want_reasons={1: "resources", 2: "priority"},
        want_blocking={2: 1},
    ),
    Case(
        "fifo: a job that can never fit does not hold the line",
        "fifo",
        (make_job(1, 16), make_job(2, 1, submit_s=1)),
        want_started=(2,),
        want_reasons={1: "never-fits"},
    ),
    Case(
        "backfill: a short job passes the reserved head",
        "backfill",
        (make_job(1, 6), make_job(2, 1, submit_s=1, duration_s=50)),
        want_started=(2,),
        want_reasons={1: "resources"},
    ),
    Case(
        "backfill: a job ending exactly at the reservation passes",
        "backfill",
        (make_job(1, 6), make_job(2, 1, submit_s=1, duration_s=100)),
        want_started=(2,),
    ),
    Case(
        "backfill: a long job that would delay the reserved head waits",
        "backfill",
        (make_job(1, 6), make_job(2, 1, submit_s=1, duration_s=500)),
        want_reasons={1: "resources", 2: "reservation"},
        want_blocking={2: 1},
    ),
    Case(
        "backfill: a long job may use GPUs the reservation leaves spare, but only those",
        "backfill",
        # Head needs 5; at t=100 there will be 6 free, so one GPU is spare for long jobs.
        (
            make_job(1, 5),
            make_job(2, 1, submit_s=1, duration_s=500),
            make_job(3, 1, submit_s=2, duration_s=500),
        ),
        want_started=(2,),
        want_reasons={1: "resources", 3: "reservation"},
        want_blocking={3: 1},
    ),
    Case(
        "backfill: the short job is judged by its estimate, not its true duration",
        "backfill",
        (make_job(1, 6), make_job(2, 1, submit_s=1, duration_s=5_000, estimate_s=50)),
        want_started=(2,),
    ),
    Case(
        "las (skip-ahead): later jobs start whenever they fit",
        "las",
        (make_job(1, 6), make_job(2, 1, submit_s=1, duration_s=5_000)),
        want_started=(2,),
        want_reasons={1: "resources"},
    ),
    Case(
        "never-fits: more GPUs per node than any node has",
        "fifo",
        (make_job(1, 16, gpus_per_node=16), make_job(2, 1, submit_s=1)),
        want_started=(2,),
        want_reasons={1: "never-fits"},
    ),
    Case(
        "never-fits: GPU count not a multiple of the per-node shape",
        "backfill",
        (make_job(1, 6, gpus_per_node=4), make_job(2, 1, submit_s=1)),
        want_started=(2,),
        want_reasons={1: "never-fits"},
    ),
    Case(
        "never-fits: no pool of an accepted model",
        "las",
        (make_job(1, 1, models=("H100",)), make_job(2, 1, submit_s=1)),
        want_started=(2,),
        want_reasons={1: "never-fits"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_discipline(case: Case) -> None:
    snapshot = make_snapshot(ONE_NODE, case.waiting, case.busy)
    before = free_state(snapshot.capacity)

    result = schedule(snapshot, build_policy(case.policy), now=0.0)

    assert tuple(s.job.id for s in result.starts) == case.want_started
    assert result.preemptions == ()
    for job_id, code in case.want_reasons.items():
        reason = result.reason_for(job_id)
        assert reason is not None and reason.code == code, (job_id, reason)
    for job_id, blocker in case.want_blocking.items():
        reason = result.reason_for(job_id)
        assert reason is not None and reason.blocking_job == blocker
    assert free_state(snapshot.capacity) == before


def test_backfill_reservation_names_its_start_time() -> None:
    snapshot = make_snapshot(ONE_NODE, (make_job(1, 6),), (R_SHORT, R_LONG))
    result = schedule(snapshot, build_policy("backfill"), now=0.0)
    reason = result.reason_for(1)
    assert reason is not None and reason.estimated_start_s == pytest.approx(100.0)


def test_backfill_without_a_blocked_job_lets_everything_fit() -> None:
    waiting = (make_job(1, 1, duration_s=10_000), make_job(2, 1, submit_s=1, duration_s=10_000))
    result = schedule(make_snapshot(ONE_NODE, waiting, (R_SHORT, R_LONG)), build_policy("backfill"), now=0.0)
    assert [s.job.id for s in result.starts] == [1, 2]


def test_never_fits_is_reported_even_on_an_idle_cluster() -> None:
    cluster = make_cluster(("p1", 1, 8), ("p2", 1, 8))
    # 12 GPUs exist in total only across two pools; a gang never spans pools.
    result = schedule(make_snapshot(cluster, (make_job(1, 12),)), build_policy("fifo"), now=0.0)
    assert result.starts == ()
    reason = result.reason_for(1)
    assert reason is not None and reason.code == "never-fits"


def test_pending_jobs_not_examined_share_the_others_reason() -> None:
    waiting = tuple(make_job(i, 8, submit_s=i) for i in range(1, 5))
    result = schedule(make_snapshot(ONE_NODE, waiting), build_policy("fifo"), now=0.0)
    assert [s.job.id for s in result.starts] == [1]
    reason = result.reason_for(4)
    assert reason is not None and reason.code in {"priority", "not-examined"}
