"""Queue disciplines: what a job that cannot start does to the jobs behind it.

- ``StrictLine``: nobody passes a waiting job (Slurm with backfill off; Kueue StrictFIFO).
- ``EasyBackfill``: the first waiting job gets a reservation at the earliest time enough GPUs free up
  (by running jobs' estimates); later jobs may start now only if they end before it, or use GPUs the
  reservation does not need (EASY, Lifka 1995; Slurm's backfill). GPUs are counted per accepted model,
  not per node shape, so the reservation is an estimate.
- ``SkipAhead``: later jobs start whenever they fit (Kueue BestEffortFIFO; Tiresias).
"""

from __future__ import annotations

from dataclasses import dataclass

from gpucommons.policy.decisions import NO_ROOM_CODES, PendingReason
from gpucommons.policy.placement.shapes import job_pools
from gpucommons.policy.snapshot import PendingJob, Snapshot


class _SkipAheadGate:
    passes_all = True

    def check(self, pending: PendingJob, now: float) -> PendingReason | None:
        return None

    def blocked(self, pending: PendingJob, reason: PendingReason, now: float) -> PendingReason:
        return reason

    def started(self, pending: PendingJob, now: float) -> None:
        return None

    def closed(self) -> PendingReason | None:
        return None


class SkipAhead:
    def open(self, snapshot: Snapshot, now: float) -> _SkipAheadGate:
        return _SkipAheadGate()


@dataclass
class _StrictGate:
    passes_all = False

    blocker: int | None = None

    def check(self, pending: PendingJob, now: float) -> PendingReason | None:
        return None

    def closed(self) -> PendingReason | None:
        if self.blocker is None:
            return None
        return PendingReason("priority", f"job {self.blocker} is ahead in line", blocking_job=self.blocker)

    def blocked(self, pending: PendingJob, reason: PendingReason, now: float) -> PendingReason:
        if self.blocker is None and reason.code in NO_ROOM_CODES:
            self.blocker = pending.job.id
        return reason

    def started(self, pending: PendingJob, now: float) -> None:
        return None


class StrictLine:
    def open(self, snapshot: Snapshot, now: float) -> _StrictGate:
        return _StrictGate()


@dataclass
class _BackfillGate:
    passes_all = False

    snapshot: Snapshot
    reserved_job: int | None = None
    shadow_s: float = 0.0
    extra_gpus: int = 0
    _horizon_s: float = 0.0  # how long a job may run and still end before the reservation
    _wait: PendingReason | None = None  # one shared reason for every job the reservation holds back

    def check(self, pending: PendingJob, now: float) -> PendingReason | None:
        if self._wait is None:
            return None
        job = pending.job
        if job.estimate_s <= self._horizon_s or job.gpus <= self.extra_gpus:
            return None
        return self._wait

    def closed(self) -> PendingReason | None:
        return None

    def started(self, pending: PendingJob, now: float) -> None:
        if self.reserved_job is not None and now + pending.job.estimate_s > self.shadow_s:
            self.extra_gpus -= pending.job.gpus

    def blocked(self, pending: PendingJob, reason: PendingReason, now: float) -> PendingReason:
        if self.reserved_job is not None or reason.code not in NO_ROOM_CODES:
            return reason
        shadow, extra = self._reservation(pending, now)
        self.reserved_job, self.shadow_s, self.extra_gpus = pending.job.id, shadow, extra
        self._horizon_s = shadow - now
        self._wait = PendingReason(
            "reservation",
            f"starting now would delay job {pending.job.id}, reserved for t={shadow:.0f}s",
            blocking_job=pending.job.id,
        )
        return PendingReason(
            reason.code, f"{reason.detail}; reserved to start by t={shadow:.0f}s", estimated_start_s=shadow
        )

    def _reservation(self, pending: PendingJob, now: float) -> tuple[float, int]:
        """Earliest time enough GPUs of accepted models are free, and how many are spare then."""
        snap = self.snapshot
        cap = snap.capacity
        pools = job_pools(snap.cluster, pending.job)
        pool_ok = set(pools)
        free = 0
        for p in pools:
            size = snap.cluster.pools[p].gpus_per_node
            free += sum(k * len(cap.nodes_with_free(p, k)) for k in range(1, size + 1))
        need = pending.job.gpus
        # The job is blocked now, so even if the free count suffices (fragmentation) at least one
        # running job has to end first.
        shadow = now
        released_any = False
        running = snap.running
        pool_of = cap.pool_of
        for end_s, job_id in snap.ends():
            if free >= need and released_any:
                break
            r = running[job_id]
            if pool_of[r.placement.node_gpus[0][0]] not in pool_ok:
                continue
            free += r.job.gpus
            shadow = max(now, end_s)
            released_any = True
        return shadow, max(0, free - need)


class EasyBackfill:
    def open(self, snapshot: Snapshot, now: float) -> _BackfillGate:
        return _BackfillGate(snapshot)
