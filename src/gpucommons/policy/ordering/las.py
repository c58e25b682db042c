"""Least attained service with discretized queues (Tiresias, NSDI'19, "2D-LAS").

A job's attained service is GPUs x seconds it has run. Queue ``i`` holds jobs whose service is below
``thresholds_gpu_s[i]`` (and above the previous one); lower queues go first, FIFO inside a queue.
Discretizing keeps jobs from flapping as their service grows; ``LasPreemptor`` lets a job displace
running jobs in strictly lower-priority queues.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
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
        level = self.queues.level
        return sorted(snapshot.pending, key=lambda p: (level(p.attained_gpu_s), p.job.submit_s, p.job.id))


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
        level = self.queues.level
        victims = [
            r
            for r in snapshot.running.values()
            if r.job.preemptible and now - r.started_s >= self.min_run_s and level(r.attained_at(now)) > mine
        ]
        victims.sort(key=lambda r: (-level(r.attained_at(now)), -r.started_s, r.job.id))
        return victims
