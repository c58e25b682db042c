"""Incremental structures the store keeps for the policy: running-job columns and the queue's parts."""

from __future__ import annotations

import math
from dataclasses import replace

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


def test_columns_keep_what_reservations_and_checkpoints_read() -> None:
    """Expected end, first node and node count, tenant code, declared interval and last checkpoint
    follow adds and removes like the other columns (a removed row is refilled by the last one)."""
    gang = Placement(((2, (0, 1)), (3, (0, 1))))
    jobs = [
        RunningJob(make_job(1, 1, tenant="a", estimate_s=100.0), PLACEMENT, 10.0),
        RunningJob(
            replace(make_job(2, 4, tenant="b", estimate_s=50.0), checkpoint_interval_s=60.0), gang, 5.0
        ),
        RunningJob(
            make_job(3, 1, tenant="a", estimate_s=10.0), Placement(((1, (0,)),)), 0.0, last_checkpoint_s=4.0
        ),
    ]
    columns = RunningColumns.of(jobs)
    columns.remove(1)
    rows = sorted(
        zip(
            columns.ids().tolist(),
            columns.expected_end_s().tolist(),
            columns.first_node().tolist(),
            columns.node_count().tolist(),
            columns.tenants().tolist(),
            columns.checkpoint_interval_s().tolist(),
            strict=True,
        )
    )
    b, a = columns.tenant_code("b"), columns.tenant_code("a")
    assert rows == [(2, 55.0, 2, 2, b, 60.0), (3, 10.0, 1, 1, a, 0.0)]
    assert a != b and columns.tenant_code("nobody") == -1
    checkpoints = dict(zip(columns.ids().tolist(), columns.last_checkpoint_s().tolist(), strict=True))
    assert checkpoints[3] == 4.0 and math.isnan(checkpoints[2])


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
