"""Least attained service with discretized queues (Tiresias, NSDI'19, "2D-LAS").

A job's attained service is GPUs x seconds it has run. Queue ``i`` holds jobs whose service is below
``thresholds_gpu_s[i]`` (and above the previous one); lower queues go first, FIFO inside a queue.
Discretizing keeps jobs from flapping as their service grows; ``LasPreemptor`` lets a job displace
running jobs in strictly lower-priority queues.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

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
        pending = snapshot.pending
        return itertools.chain.from_iterable(
            (p for p in pending if level(p.attained_gpu_s) == lvl)
            for lvl in range(len(self.queues.thresholds_gpu_s) + 1)
        )


@dataclass(frozen=True)
class LasPreemptor:
    """Victims: preemptible running jobs in a strictly lower queue that have run ``min_run_s``;
    the lowest queue first, then the most recently started (least work lost)."""

    queues: LasQueues = LasQueues()
    min_run_s: float = 60.0

    def candidates(
        self, pending: PendingJob, borrowing: bool, snapshot: Snapshot, now: float
    ) -> Sequence[RunningJob]:
        mine = self.queues.level(pending.attained_gpu_s)
        thresholds = self.queues.thresholds_gpu_s
        latest_start = now - self.min_run_s
        ranked = []
        for r in snapshot.running.values():  # hot: once per cycle on a full cluster, so inlined
            job = r.job
            if job.preemptible and r.started_s <= latest_start:
                lvl = bisect_right(thresholds, r.attained_gpu_s + job.gpus * (now - r.started_s))
                if lvl > mine:
                    ranked.append((-lvl, -r.started_s, job.id, r))
        ranked.sort(key=lambda v: v[:3])
        return [v[3] for v in ranked]

    def scope_key(self, pending: PendingJob, borrowing: bool) -> Hashable:
        return self.queues.level(pending.attained_gpu_s)
