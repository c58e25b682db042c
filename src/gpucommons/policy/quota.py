"""Guaranteed quotas with borrowing and reclaim (Kueue's ClusterQueue in one cohort), as an admission
stage fed by awards.

Each tenant has a nominal quota of GPUs: the guarantees of its awards active now when the snapshot
carries awards, else ``Snapshot.quota_gpus``. A job that keeps its tenant within quota starts as
guaranteed; beyond it the job may borrow idle capacity (up to ``borrowing_limit_gpus``), and is marked
``borrowing``. With borrowing off each award is a static partition. A guaranteed job that does not fit
may reclaim capacity by preempting other tenants' borrowing jobs (``ReclaimPreemptor``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

from gpucommons.domain.job import Job, Placement
from gpucommons.policy.decisions import PendingReason, Start
from gpucommons.policy.lost_work import since_checkpoint_s
from gpucommons.policy.protocols import BORROWS, Admitted, Verdict
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot


def nominal_quotas(snapshot: Snapshot, now: float) -> Mapping[str, int]:
    """Guaranteed GPUs per tenant at ``now``: its active awards' guarantees (reclaims already taken
    off), or the snapshot's fixed quotas when the run has no awards."""
    if snapshot.awards is None:
        return snapshot.quota_gpus
    quotas: dict[str, int] = {}
    for tenant, awards in snapshot.awards.items():
        total = sum(a.guaranteed_gpus for a in awards if a.active_at(now))
        if total:
            quotas[tenant] = total
    return quotas


@dataclass(slots=True)
class QuotaGate:
    quotas: Mapping[str, int]
    used: defaultdict[str, int]
    allow_borrowing: bool
    borrowing_limit_gpus: int | None
    checks_placements: bool = False

    def check(self, job: Job) -> tuple[PendingReason | None, bool]:
        """(reason to wait, whether the start borrows)."""
        nominal = self.quotas.get(job.tenant, 0)
        used = self.used[job.tenant]
        if used + job.gpus <= nominal:
            return None, False
        borrowed_after = used + job.gpus - nominal
        if not self.allow_borrowing or (
            self.borrowing_limit_gpus is not None and borrowed_after > self.borrowing_limit_gpus
        ):
            detail = f"tenant {job.tenant} uses {used} of its {nominal} guaranteed GPUs"
            figures = (("used_gpus", float(used)), ("guaranteed_gpus", float(nominal)))
            return PendingReason("quota", detail, figures=figures), False
        return None, True

    def admit(self, pending: PendingJob, admitted: Admitted | None) -> Verdict:
        job = pending.job if admitted is None else admitted.job
        tenant = job.tenant
        after = self.used[tenant] + job.gpus - self.quotas.get(tenant, 0)
        if after <= 0:
            return admitted  # guaranteed (no allocation: this runs for every job of the queue)
        limit = self.borrowing_limit_gpus
        if self.allow_borrowing and (limit is None or after <= limit):
            return BORROWS if admitted is None else Admitted(job, True)
        reason, _ = self.check(job)
        return reason

    def accept(self, job: Job, placement: Placement, victims: Sequence[RunningJob]) -> PendingReason | None:
        return None

    def started(self, start: Start) -> Start:
        self.used[start.job.tenant] += start.job.gpus
        return start

    def preempted(self, running: RunningJob) -> None:
        self.used[running.job.tenant] -= running.job.gpus

    def evictions(self) -> Sequence[tuple[RunningJob, str]]:
        return ()


@dataclass(frozen=True)
class QuotaStage:
    allow_borrowing: bool = True
    borrowing_limit_gpus: int | None = None
    name: str = "quota"

    def open(self, snapshot: Snapshot, now: float) -> QuotaGate:
        return QuotaGate(
            dict(nominal_quotas(snapshot, now)),
            defaultdict(int, snapshot.tenant_running_gpus),
            self.allow_borrowing,
            self.borrowing_limit_gpus,
        )


@dataclass(frozen=True)
class ReclaimPreemptor:
    """A guaranteed (non-borrowing) job may preempt other tenants' borrowing jobs, newest first.

    ``min_run_s``: a borrower that has run less is no victim (as ``LasPreemptor``'s, and Slurm's
    PreemptExemptTime), so a borrower reclaimed, restarted on the next idle GPUs and reclaimed again
    does not lose its work over and over. The default 0 gives a guarantee back at once, as Kueue's
    reclaim does; a lender then waits up to ``min_run_s`` for its own GPUs. ``checkpoint_aware``: the
    borrowers that would lose the least work per GPU first (``policy/lost_work.py``), then the newest."""

    min_run_s: float = 0.0
    checkpoint_aware: bool = False

    def candidates(
        self, pending: PendingJob, borrowing: bool, snapshot: Snapshot, now: float
    ) -> Sequence[RunningJob]:
        if borrowing:
            return ()
        tenant = pending.job.tenant
        youngest_s = now - self.min_run_s if self.min_run_s > 0 else float("inf")
        victims = [
            r
            for r in snapshot.running.values()
            if r.borrowing and r.job.preemptible and r.job.tenant != tenant and r.started_s <= youngest_s
        ]
        if self.checkpoint_aware:
            victims.sort(key=lambda r: (since_checkpoint_s(r, now), -r.started_s, r.job.id))
        else:
            victims.sort(key=lambda r: (-r.started_s, r.job.id))
        return victims

    def scope_key(self, pending: PendingJob, borrowing: bool) -> Hashable:
        return (pending.job.tenant, borrowing)
