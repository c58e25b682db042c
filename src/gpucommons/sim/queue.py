"""A pending-job queue that iterates in (submit_s, job id) order at O(1) per arrival.

Arrivals come in submit order, so they append to an insertion-ordered dict. Preempted jobs re-enter
with their original submit time, out of arrival order: they go to a small sorted side list, and
iteration merges the two lazily. Re-sorting the whole queue on every preemption (what a plain dict
would need) dominated replays of preemptive policies on a saturated cluster.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Collection, Iterator, Mapping, Sequence

from gpucommons.policy.snapshot import PendingJob


def _order(p: PendingJob) -> tuple[float, int]:
    return (p.job.submit_s, p.job.id)


class JobQueue:
    def __init__(self) -> None:
        self._arrived: dict[int, PendingJob] = {}
        self._requeued: list[tuple[float, int, PendingJob]] = []  # sorted by (submit_s, id)
        self._requeued_jobs: list[PendingJob] = []  # the same jobs, alone, in the same order

    def arrive(self, pending: PendingJob) -> None:
        """A new job; callers add arrivals in (submit_s, id) order."""
        self._arrived[pending.job.id] = pending

    def requeue(self, pending: PendingJob) -> None:
        entry = (pending.job.submit_s, pending.job.id, pending)
        i = bisect_left(self._requeued, entry[:2])
        self._requeued.insert(i, entry)
        self._requeued_jobs.insert(i, pending)

    def pop(self, pending_job_id: int, submit_s: float) -> PendingJob:
        found = self._arrived.pop(pending_job_id, None)
        if found is not None:
            return found
        i = bisect_left(self._requeued, (submit_s, pending_job_id))
        del self._requeued_jobs[i]
        return self._requeued.pop(i)[2]

    def __len__(self) -> int:
        return len(self._arrived) + len(self._requeued)

    def view(self) -> Collection[PendingJob]:
        """A read-only view in (submit_s, id) order, valid until the queue changes."""
        if not self._requeued:
            return self._arrived.values()
        return _MergedView(self)

    def parts(self) -> tuple[Collection[PendingJob], Sequence[PendingJob]]:
        """(jobs that arrived and never ran, requeued jobs), each in (submit_s, id) order; read-only
        views valid until the queue changes."""
        return self._arrived.values(), self._requeued_jobs

    def merged(self) -> Iterator[PendingJob]:
        return heapq.merge(self._arrived.values(), (r[2] for r in self._requeued), key=_order)


class _MergedView(Collection[PendingJob]):
    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue

    def __iter__(self) -> Iterator[PendingJob]:
        return self._queue.merged()

    def __len__(self) -> int:
        return len(self._queue)

    def __contains__(self, item: object) -> bool:
        return any(p is item for p in self._queue.merged())


class TenantQueues(Mapping[str, Collection[PendingJob]]):
    """Each tenant's queue as a read-only view, looked up when read: one object for the whole replay,
    handed to every snapshot, since most policies never group the queue by tenant."""

    def __init__(self, queues: Mapping[str, JobQueue]) -> None:
        self._queues = queues

    def __getitem__(self, tenant: str) -> Collection[PendingJob]:
        return self._queues[tenant].view()

    def __iter__(self) -> Iterator[str]:
        return iter(self._queues)

    def __len__(self) -> int:
        return len(self._queues)
