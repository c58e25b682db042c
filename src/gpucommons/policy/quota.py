"""Guaranteed quotas with borrowing and reclaim (Kueue's ClusterQueue in one cohort).

Each tenant has a nominal quota of GPUs (from its awards). A job that keeps its tenant within quota
starts as guaranteed; beyond it the job may borrow idle capacity (up to ``borrowing_limit_gpus``), and is
marked ``borrowing``. A guaranteed job that does not fit may reclaim capacity by preempting other
tenants' borrowing jobs (``ReclaimPreemptor``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from gpucommons.domain.job import Job
from gpucommons.policy.decisions import PendingReason
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot


@dataclass
class _QuotaGate:
    quotas: Mapping[str, int]
    used: defaultdict[str, int]
    allow_borrowing: bool
    borrowing_limit_gpus: int | None
    _reasons: dict[str, PendingReason] = field(default_factory=dict)

    def check(self, pending: PendingJob) -> tuple[PendingReason | None, bool]:
        job = pending.job
        nominal = self.quotas.get(job.tenant, 0)
        used = self.used[job.tenant]
        if used + job.gpus <= nominal:
            return None, False
        borrowed_after = used + job.gpus - nominal
        if not self.allow_borrowing or (
            self.borrowing_limit_gpus is not None and borrowed_after > self.borrowing_limit_gpus
        ):
            detail = f"tenant {job.tenant} uses {used} of its {nominal} guaranteed GPUs"
            return PendingReason("quota", detail), False
        return None, True

    def started(self, job: Job, borrowing: bool) -> None:
        self.used[job.tenant] += job.gpus

    def preempted(self, running: RunningJob) -> None:
        self.used[running.job.tenant] -= running.job.gpus


@dataclass(frozen=True)
class QuotaAdmission:
    allow_borrowing: bool = True
    borrowing_limit_gpus: int | None = None

    def open(self, snapshot: Snapshot, now: float) -> _QuotaGate:
        return _QuotaGate(
            snapshot.quota_gpus,
            defaultdict(int, snapshot.tenant_running_gpus),
            self.allow_borrowing,
            self.borrowing_limit_gpus,
        )


@dataclass(frozen=True)
class ReclaimPreemptor:
    """A guaranteed (non-borrowing) job may preempt other tenants' borrowing jobs, newest first."""

    def candidates(
        self, pending: PendingJob, borrowing: bool, snapshot: Snapshot, now: float
    ) -> Sequence[RunningJob]:
        if borrowing:
            return ()
        tenant = pending.job.tenant
        victims = [
            r
            for r in snapshot.running.values()
            if r.borrowing and r.job.preemptible and r.job.tenant != tenant
        ]
        victims.sort(key=lambda r: (-r.started_s, r.job.id))
        return victims

    def scope_key(self, pending: PendingJob, borrowing: bool) -> Hashable:
        return (pending.job.tenant, borrowing)
