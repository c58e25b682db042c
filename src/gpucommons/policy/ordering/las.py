"""Least attained service with discretized queues (Tiresias, NSDI'19, "2D-LAS").

A job's attained service is GPUs x seconds it has run. Queue ``i`` holds jobs whose service is below
``thresholds_gpu_s[i]`` (and above the previous one); lower queues go first, FIFO inside a queue.
Discretizing keeps jobs from flapping as their service grows; ``LasPreemptor`` lets a job displace
running jobs in strictly lower-priority queues.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from gpucommons.policy.lost_work import since_checkpoint_s_columns
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot


@dataclass(frozen=True)
class LasQueues:
    thresholds_gpu_s: tuple[float, ...] = (3_600.0, 36_000.0)

    def level(self, attained_gpu_s: float) -> int:
        return bisect_right(self.thresholds_gpu_s, attained_gpu_s)


@dataclass(frozen=True)
class LasOrdering:
    queues: LasQueues = LasQueues()

    def order(self, snapshot: Snapshot, now: float) -> Iterable[PendingJob]:
        """Queue by queue, each a lazy filter of the (submit_s, id)-ordered queue: a cycle that stops
        early never ranks the whole queue."""
        level = self.queues.level
        levels = range(len(self.queues.thresholds_gpu_s) + 1)
        if snapshot.pending_parts is not None:
            # Jobs that never ran all sit in one queue; only requeued jobs need ranking, each once.
            fresh, requeued = snapshot.pending_parts
            by_level: list[list[PendingJob]] = [[] for _ in levels]
            for p in requeued:
                by_level[level(p.attained_gpu_s)].append(p)
            fresh_level = level(0.0)
            queues: list[Iterable[PendingJob]] = [*by_level]
            queues[fresh_level] = _merge(fresh, by_level[fresh_level])
            return itertools.chain.from_iterable(queues)
        pending = snapshot.pending
        return itertools.chain.from_iterable(
            (p for p in pending if level(p.attained_gpu_s) == lvl) for lvl in levels
        )


def _merge(ordered: Iterable[PendingJob], few: Sequence[PendingJob]) -> Iterator[PendingJob]:
    """Merge a long and a short sequence, both in (submit_s, id) order."""
    if not few:
        yield from ordered
        return
    i, n = 0, len(few)
    head = few[0].job
    for p in ordered:
        job = p.job
        while i < n and (head.submit_s, head.id) < (job.submit_s, job.id):
            yield few[i]
            i += 1
            if i < n:
                head = few[i].job
        yield p
    yield from few[i:]


@dataclass(frozen=True)
class LasPreemptor:
    """Victims: preemptible running jobs in a strictly lower queue that have run ``min_run_s``;
    the lowest queue first, then the most recently started. ``checkpoint_aware``: within a queue, the
    ones that would lose the least work per GPU first (``policy/lost_work.py``), then the most
    recently started."""

    queues: LasQueues = LasQueues()
    min_run_s: float = 60.0
    checkpoint_aware: bool = False

    def candidates(
        self, pending: PendingJob, borrowing: bool, snapshot: Snapshot, now: float
    ) -> Sequence[RunningJob]:
        mine = self.queues.level(pending.attained_gpu_s)
        columns = snapshot.columns()
        started = columns.started_s()
        # Vectorized over every running job (hot: once per cycle on a full cluster); the arithmetic is
        # the scalar ``attained + gpus * (now - started)`` element by element, so levels match exactly.
        levels = np.searchsorted(
            np.asarray(self.queues.thresholds_gpu_s, dtype=np.float64),
            columns.attained_gpu_s() + columns.gpus() * (now - started),
            side="right",
        )
        chosen = np.flatnonzero(columns.preemptible() & (started <= now - self.min_run_s) & (levels > mine))
        if not len(chosen):
            return []
        ids = columns.ids()[chosen]
        if self.checkpoint_aware:
            # Lowest queue first, then the least work lost per GPU, the most recently started, the id.
            since = since_checkpoint_s_columns(columns, now)[chosen]
            order = np.lexsort((ids, -started[chosen], since, -levels[chosen]))
        else:
            # Lowest queue first, then the most recently started, then by id.
            order = np.lexsort((ids, -started[chosen], -levels[chosen]))
        running = snapshot.running
        return [running[i] for i in ids[order].tolist()]

    def scope_key(self, pending: PendingJob, borrowing: bool) -> Hashable:
        return self.queues.level(pending.attained_gpu_s)
