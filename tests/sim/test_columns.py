"""Incremental structures the store keeps for the policy: running-job columns and the queue's parts."""

from __future__ import annotations

from gpucommons.domain.job import Placement
from gpucommons.policy.snapshot import PendingJob, RunningColumns, RunningJob
from gpucommons.sim.queue import JobQueue
from tests.conftest import make_job

PLACEMENT = Placement(((0, (0,)),))


def test_columns_follow_adds_and_removes() -> None:
    columns = RunningColumns(capacity=1)
    jobs = [RunningJob(make_job(i, i + 1), PLACEMENT, 10.0 * i, attained_gpu_s=i) for i in range(5)]
    for r in jobs:
        columns.add(r)
    columns.remove(1)
    columns.remove(4)
    rows = sorted(
        zip(
            columns.ids().tolist(),
            columns.gpus().tolist(),
            columns.started_s().tolist(),
            columns.attained_gpu_s().tolist(),
            strict=True,
        )
    )
    assert rows == [(0, 1.0, 0.0, 0.0), (2, 3.0, 20.0, 2.0), (3, 4.0, 30.0, 3.0)]
    assert len(columns) == 3
    assert len(RunningColumns.of(jobs)) == 5


def test_queue_parts_split_arrivals_from_requeued() -> None:
    queue = JobQueue()
    a, b, c = (PendingJob(make_job(i, 1, submit_s=float(i))) for i in range(3))
    queue.arrive(a)
    queue.arrive(c)
    queue.requeue(b)
    fresh, requeued = queue.parts()
    assert list(fresh) == [a, c] and list(requeued) == [b]
    assert list(queue.view()) == [a, b, c]
    queue.pop(1, 1.0)
    assert list(queue.parts()[1]) == []
