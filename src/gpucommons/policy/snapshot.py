"""What the policy sees in one cycle: capacity, the queue, running jobs, usage and quotas.

The collections are read-only views that stay valid for one call of ``schedule``; the store that built
them must not change them until the cycle's decisions are recorded.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job, Placement
from gpucommons.policy.capacity import Capacity


def _empty() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A job waiting to (re)start; ``attained_gpu_s`` counts service from earlier runs (preemptions)."""

    job: Job
    attained_gpu_s: float = 0.0
    queued_since_s: float = 0.0
    restarts: int = 0


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job holding accelerators. ``borrowing`` marks a start beyond its tenant's guaranteed quota."""

    job: Job
    placement: Placement
    started_s: float
    attained_gpu_s: float = 0.0
    borrowing: bool = False

    def attained_at(self, now: float) -> float:
        return self.attained_gpu_s + self.job.gpus * max(0.0, now - self.started_s)

    def expected_end_s(self) -> float:
        """When the job should end by its estimate (the time limit), counting from this segment."""
        done_s = self.attained_gpu_s / self.job.gpus if self.job.gpus else 0.0
        return self.started_s + max(0.0, self.job.estimate_s - done_s)


@dataclass(frozen=True)
class Snapshot:
    """Immutable (to the policy) view of the cluster at one instant. ``pending`` iterates in
    (submit_s, job id) order, so first-come orderings can consume it lazily."""

    cluster: Cluster
    capacity: Capacity
    pending: Collection[PendingJob]
    running: Mapping[int, RunningJob]
    tenant_usage_gpu_s: Mapping[str, float] = field(default_factory=_empty)
    tenant_running_gpus: Mapping[str, int] = field(default_factory=_empty)
    quota_gpus: Mapping[str, int] = field(default_factory=_empty)
    # (expected end, job id) of every running job, ascending; ``None``: derive it from ``running``.
    # Stores that keep it incrementally spare backfill a sort of all running jobs per cycle.
    running_ends: Sequence[tuple[float, int]] | None = None
    # The pending jobs of each tenant that has any, each in (submit_s, id) order; ``None``: derive it.
    pending_by_tenant: Mapping[str, Collection[PendingJob]] | None = None

    def tenant_queues(self) -> Mapping[str, Collection[PendingJob]]:
        """Pending jobs grouped by tenant, each group in (submit_s, id) order."""
        if self.pending_by_tenant is not None:
            return self.pending_by_tenant
        groups: dict[str, list[PendingJob]] = {}
        for p in self.pending:
            groups.setdefault(p.job.tenant, []).append(p)
        return groups

    def ends(self) -> Sequence[tuple[float, int]]:
        """Running jobs' (expected end, job id), earliest first."""
        if self.running_ends is not None:
            return self.running_ends
        return sorted((r.expected_end_s(), r.job.id) for r in self.running.values())
