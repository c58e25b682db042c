"""The ``speed`` stage of the ``hetero`` policy (design note 0009): each job goes to the model where it
would finish first, counting the wait for a faster model and what jobs ahead of it booked there."""

from __future__ import annotations

import pytest

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.cluster import Cluster, Pool, Site
from gpucommons.domain.speeds import SpeedTable
from gpucommons.policy.constraints.speed import SpeedGate
from gpucommons.policy.protocols import Admitted, Verdict
from gpucommons.policy.registry import build_policy
from gpucommons.policy.snapshot import PendingJob
from gpucommons.sim.runner import SimOptions, SimResult, simulate
from tests.conftest import make_job


def fast_and_slow(speeds: SpeedTable | None = SpeedTable()) -> Cluster:
    pools = (Pool("a100", "site", CATALOG["A100"], 1, 8), Pool("k80", "site", CATALOG["K80"], 1, 8))
    return Cluster.build("two", (Site("site"),), pools, speeds)


def where(result: SimResult) -> dict[int, tuple[str, float]]:
    """Each job's (model, start) of its first segment."""
    first: dict[int, tuple[str, float]] = {}
    for segment in sorted(result.segments, key=lambda s: s.start_s):
        first.setdefault(segment.job_id, (segment.model, segment.start_s))
    return first


JOBS = [
    make_job(1, 8, duration_s=1_000.0),  # takes the A100 node at 0
    make_job(2, 8, submit_s=1.0, duration_s=1_000.0),  # A100 frees at 1,000: done by 2,000, vs 6,668 on K80
    make_job(3, 8, submit_s=2.0, duration_s=10.0),  # A100 booked by job 2 until 2,000: K80 ends at ~69
]


def test_a_long_job_waits_for_the_fast_model_and_a_short_one_takes_the_slow_one() -> None:
    result = simulate(JOBS, fast_and_slow(), build_policy("hetero"))
    assert where(result) == {1: ("A100", 0.0), 2: ("A100", 1_000.0), 3: ("K80", 2.0)}
    ends = {r.job.id: r.end_s for r in result.records}
    assert ends[3] is not None and abs(ends[3] - (2.0 + 10.0 / 0.15)) < 1e-6


def test_a_blind_policy_sends_the_long_job_to_the_free_slow_model() -> None:
    result = simulate(JOBS, fast_and_slow(), build_policy("las"))
    assert where(result)[2] == ("K80", 1.0)
    hetero = simulate(JOBS, fast_and_slow(), build_policy("hetero"))
    mean = {
        name: sum(r.end_s - r.job.submit_s for r in run.records if r.end_s is not None) / 3
        for name, run in (("las", result), ("hetero", hetero))
    }
    assert mean["hetero"] < mean["las"]


def test_on_a_speed_blind_cluster_hetero_places_as_las_does() -> None:
    blind = fast_and_slow(speeds=None)
    assert where(simulate(JOBS, blind, build_policy("hetero"))) == where(
        simulate(JOBS, blind, build_policy("las"))
    )


def test_a_job_pushed_off_the_fast_model_chooses_again_and_goes_on_on_a_free_slow_one() -> None:
    """Job 2 may run only on the A100 and, new, preempts job 1 there (LAS). Job 1 has 50,000 s of work
    left: on the free K80 that takes ~333,000 s, on the A100 it waits out job 2's 1,000,000 s first. It
    chooses again among all its models, so it goes on on the K80 and ends first."""
    jobs = [
        make_job(1, 8, duration_s=100_000.0),
        make_job(2, 8, submit_s=50_000.0, duration_s=1_000_000.0, models=["A100"]),
    ]
    result = simulate(jobs, fast_and_slow(), build_policy("hetero"), SimOptions(restart_overhead_s=0.0))
    runs = sorted((s.start_s, s.model) for s in result.segments if s.job_id == 1)
    assert runs == [(0.0, "A100"), (50_000.0, "K80")]
    ends = {r.job.id: r.end_s for r in result.records}
    assert ends[1] == pytest.approx(50_000.0 + 50_000.0 / 0.15)


def test_free_gpus_scattered_over_nodes_do_not_start_a_job_that_needs_one_node() -> None:
    """Three A100 nodes with 3 GPUs free on each (9 in all) hold no 8-GPU job now: it takes the free K80
    node at once rather than wait for an A100 node its finish estimate would have counted as free."""
    pools = (Pool("a100", "site", CATALOG["A100"], 3, 8), Pool("k80", "site", CATALOG["K80"], 1, 8))
    cluster = Cluster.build("two", (Site("site"),), pools, SpeedTable())
    jobs = [make_job(i, 5, duration_s=100_000.0, models=["A100"]) for i in (1, 2, 3)]
    jobs.append(make_job(4, 8, submit_s=1.0, duration_s=100.0))
    assert where(simulate(jobs, cluster, build_policy("hetero")))[4] == ("K80", 1.0)


def test_a_requeued_job_counts_the_work_it_did_at_the_speed_it_ran(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pushed off the K80 after 1,000 s there, job 1 has done 150 s of work, not 1,000."""
    jobs = [
        make_job(1, 8, duration_s=1_000.0, models=["K80"]),
        make_job(2, 8, submit_s=1_000.0, duration_s=10.0, models=["K80"]),
    ]
    seen: list[float] = []
    real_admit = SpeedGate.admit

    def admit(gate: SpeedGate, pending: PendingJob, admitted: Admitted | None) -> Verdict:
        if pending.job.id == 1 and pending.restarts:
            seen.append(pending.done_work_s())
        return real_admit(gate, pending, admitted)

    monkeypatch.setattr(SpeedGate, "admit", admit)
    simulate(jobs, fast_and_slow(), build_policy("hetero"), SimOptions(restart_overhead_s=0.0))
    assert seen and seen[0] == pytest.approx(1_000.0 * 0.15)
