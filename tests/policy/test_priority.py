"""Priority classes through ``schedule()``: higher classes are considered first, a class that preempts
displaces lower ones, and no policy preemptor displaces a job of a higher class."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from gpucommons.domain.job import Job
from gpucommons.errors import InvalidRequestError
from gpucommons.policy.cycle import schedule
from gpucommons.policy.priority import PriorityClass, PriorityClasses
from gpucommons.policy.registry import build_policy
from gpucommons.sim.runner import simulate
from tests.conftest import make_cluster, make_job, make_snapshot, pending, running

NOW = 1_000.0
ALL8 = (0, 1, 2, 3, 4, 5, 6, 7)


def classed(job: Job, name: str) -> Job:
    return replace(job, priority_class=name)


def started(
    policy: str, waiting: Sequence[Job], busy: Sequence[tuple[Job, float]] = ()
) -> tuple[list[int], list[int]]:
    cluster = make_cluster(("p", 1, 8))
    snapshot = make_snapshot(
        cluster, [pending(j) for j in waiting], [running(j, [(0, ALL8)], started_s=s) for j, s in busy]
    )
    result = schedule(snapshot, build_policy(policy), NOW)
    return [s.job.id for s in result.starts], [p.job_id for p in result.preemptions]


@pytest.mark.parametrize("policy", ["fifo", "backfill", "fairshare", "las", "quota"])
def test_a_higher_class_is_considered_first_under_every_policy(policy: str) -> None:
    early_normal = make_job(1, 8, submit_s=0.0)
    late_high = classed(make_job(2, 8, submit_s=500.0), "high")
    assert started(policy, [early_normal, late_high])[0] == [2]


def test_a_lower_class_waits_behind_a_later_normal_job() -> None:
    early_low = classed(make_job(1, 8, submit_s=0.0), "low")
    late_normal = make_job(2, 8, submit_s=500.0)
    assert started("fifo", [early_low, late_normal])[0] == [2]


def test_within_a_class_the_policy_order_holds() -> None:
    jobs = [classed(make_job(i, 8, submit_s=float(i)), "high") for i in (3, 1, 2)]
    assert started("fifo", jobs)[0] == [1]


def test_high_displaces_a_running_low_job_even_without_a_preemptor() -> None:
    low = classed(make_job(101, 8), "low")
    assert started("fifo", [classed(make_job(1, 8, submit_s=NOW), "high")], [(low, 0.0)]) == ([1], [101])


@pytest.mark.parametrize(
    ("victim_class", "preemptible"),
    [("high", True), ("normal", False)],
    ids=["same class", "not preemptible"],
)
def test_high_spares_its_own_class_and_non_preemptible_jobs(victim_class: str, preemptible: bool) -> None:
    victim = classed(make_job(101, 8, preemptible=preemptible), victim_class)
    assert started("fifo", [classed(make_job(1, 8, submit_s=NOW), "high")], [(victim, 0.0)]) == ([], [])


def test_a_normal_job_never_displaces_a_lower_one_by_class_alone() -> None:
    low = classed(make_job(101, 8), "low")
    assert started("fifo", [make_job(1, 8, submit_s=NOW)], [(low, 0.0)]) == ([], [])


def test_las_never_displaces_a_higher_class_job() -> None:
    # A queue-0 job displaces a queue-1 job under LAS, unless the running job's class is higher.
    long_running = make_job(101, 8)
    assert started("las", [make_job(1, 8, submit_s=NOW)], [(long_running, 0.0)]) == ([1], [101])
    protected = classed(long_running, "high")
    assert started("las", [make_job(1, 8, submit_s=NOW)], [(protected, 0.0)]) == ([], [])


def test_an_operator_table_changes_who_preempts() -> None:
    table = PriorityClasses((PriorityClass("low", 0), PriorityClass("normal", 10, preempts_lower=True)))
    config = replace(build_policy("fifo"), priority_classes=table)
    cluster = make_cluster(("p", 1, 8))
    low = classed(make_job(101, 8), "low")
    snapshot = make_snapshot(cluster, [pending(make_job(1, 8, submit_s=NOW))], [running(low, [(0, ALL8)])])
    result = schedule(snapshot, config, NOW)
    assert [s.job.id for s in result.starts] == [1] and [p.job_id for p in result.preemptions] == [101]


def test_a_replay_starts_a_high_job_at_once_on_a_full_cluster() -> None:
    cluster = make_cluster(("p", 2, 8))
    lows = [classed(make_job(i, 8, submit_s=0.0, duration_s=10_000.0), "low") for i in (1, 2)]
    high = classed(make_job(3, 8, submit_s=100.0, duration_s=50.0), "high")
    result = simulate([*lows, high], cluster, build_policy("fifo"))
    by_id = {r.job.id: r for r in result.records}
    assert by_id[3].first_start_s == 100.0 and by_id[3].end_s == 150.0
    assert sum(r.preemptions for r in result.records) == 1
    assert all(r.end_s is not None for r in result.records)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("low=0,normal=100,high=1000:preempts", "ok"),
        ("normal=1", "ok"),
        ("low=0", "must define 'normal'"),
        ("normal=1,normal=2", "given twice"),
        ("normal", "write name=priority"),
        ("normal=x", "not an integer"),
        ("normal=1:sometimes", "unknown rule"),
        ("normal=1,urgent=5", "must be one of"),
    ],
)
def test_parsing_a_class_table(text: str, want: str) -> None:
    if want == "ok":
        table = PriorityClasses.parse(text, known=("low", "normal", "high"))
        assert table.default.name == "normal"
        return
    with pytest.raises(InvalidRequestError, match=want):
        PriorityClasses.parse(text, known=("low", "normal", "high"))
