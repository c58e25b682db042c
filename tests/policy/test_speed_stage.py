"""The ``speed`` stage of the ``hetero`` policy (design note 0009): each job goes to the model where it
would finish first, counting the wait for a faster model and what jobs ahead of it booked there."""

from __future__ import annotations

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.cluster import Cluster, Pool, Site
from gpucommons.domain.speeds import SpeedTable
from gpucommons.policy.registry import build_policy
from gpucommons.sim.runner import SimResult, simulate
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
