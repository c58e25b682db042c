"""What the policy sees in one cycle: capacity, the queue, running jobs, usage and quotas.

The collections are read-only views that stay valid for one call of ``schedule``; the store that built
them must not change them until the cycle's decisions are recorded.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

from gpucommons.domain.award import Award
from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job, Placement
from gpucommons.domain.reservation import Reservation
from gpucommons.policy.capacity import Capacity
from gpucommons.policy.constraints.draw import SiteDraw


def _empty() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class PendingJob:
    """A job waiting to (re)start; ``attained_gpu_s`` counts service from earlier runs (preemptions),
    in GPU-seconds held. ``work_s``: the work those runs did, in reference-device seconds, where it
    differs from the time held (on a speed-aware cluster, design note 0009); ``None``: the same."""

    job: Job
    attained_gpu_s: float = 0.0
    queued_since_s: float = 0.0
    restarts: int = 0
    work_s: float | None = None

    def done_work_s(self) -> float:
        """Reference-device seconds of work done so far (the run time done, on a speed-blind cluster)."""
        return _done_work_s(self.job, self.attained_gpu_s, self.work_s)


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job holding accelerators. ``borrowing`` marks a start beyond its tenant's guaranteed quota;
    ``award_id`` the award its run is charged to."""

    job: Job
    placement: Placement
    started_s: float
    attained_gpu_s: float = 0.0
    borrowing: bool = False
    award_id: int | None = None
    work_s: float | None = None  # done before this run, as ``PendingJob.work_s``
    last_checkpoint_s: float | None = None  # its last reported checkpoint in this run; ``None``: none

    def done_work_s(self) -> float:
        """Reference-device seconds of work done before this run."""
        return _done_work_s(self.job, self.attained_gpu_s, self.work_s)

    def attained_at(self, now: float) -> float:
        return self.attained_gpu_s + self.job.gpus * max(0.0, now - self.started_s)

    def expected_end_s(self) -> float:
        """When the job should end by its estimate (the time limit), counting from this segment."""
        done_s = self.attained_gpu_s / self.job.gpus if self.job.gpus else 0.0
        return self.started_s + max(0.0, self.job.estimate_s - done_s)


def _done_work_s(job: Job, attained_gpu_s: float, work_s: float | None) -> float:
    if work_s is not None:
        return work_s
    return attained_gpu_s / job.gpus if job.gpus else 0.0


class RunningColumns:
    """Running jobs as parallel NumPy columns, so per-cycle scans over every running job (LAS ranking,
    the work a preemption would lose, the nodes a reservation holds) run vectorized: id, GPUs, start,
    attained service, preemptible, declared checkpoint interval (0: none), last reported checkpoint
    (NaN: none), expected end (``RunningJob.expected_end_s``), first node and node count of its
    placement (-1 and 0 for none), and a code for its tenant (``tenant_code``). Rows are in no
    particular order. Add and remove are O(1) amortized (a removed row is replaced by the last one)."""

    def __init__(self, capacity: int = 64) -> None:
        self._n = 0
        self._row: dict[int, int] = {}
        self._codes: dict[str, int] = {}
        self._ids = np.zeros(capacity, dtype=np.int64)
        self._gpus = np.zeros(capacity, dtype=np.float64)
        self._started = np.zeros(capacity, dtype=np.float64)
        self._attained = np.zeros(capacity, dtype=np.float64)
        self._preemptible = np.zeros(capacity, dtype=np.bool_)
        self._interval = np.zeros(capacity, dtype=np.float64)
        self._checkpoint = np.full(capacity, np.nan, dtype=np.float64)
        self._end = np.zeros(capacity, dtype=np.float64)
        self._node = np.zeros(capacity, dtype=np.int64)
        self._span = np.zeros(capacity, dtype=np.int64)
        self._tenant = np.zeros(capacity, dtype=np.int64)

    _COLUMNS = (
        "_ids",
        "_gpus",
        "_started",
        "_attained",
        "_preemptible",
        "_interval",
        "_checkpoint",
        "_end",
        "_node",
        "_span",
        "_tenant",
    )

    @classmethod
    def of(cls, running: Iterable[RunningJob]) -> RunningColumns:
        columns = cls()
        for r in running:
            columns.add(r)
        return columns

    def __len__(self) -> int:
        return self._n

    def add(self, running: RunningJob) -> None:
        n = self._n
        if n == len(self._ids):
            for name in self._COLUMNS:
                setattr(self, name, np.resize(getattr(self, name), 2 * n))
        job = running.job
        self._row[job.id] = n
        self._ids[n] = job.id
        self._gpus[n] = job.gpus
        self._started[n] = running.started_s
        self._attained[n] = running.attained_gpu_s
        self._preemptible[n] = job.preemptible
        interval, checkpoint = job.checkpoint_interval_s, running.last_checkpoint_s
        self._interval[n] = 0.0 if interval is None else interval
        self._checkpoint[n] = np.nan if checkpoint is None else checkpoint
        self._end[n] = running.expected_end_s()
        node_gpus = running.placement.node_gpus
        self._node[n] = node_gpus[0][0] if node_gpus else -1
        self._span[n] = len(node_gpus)
        code = self._codes.get(job.tenant)
        if code is None:
            code = self._codes[job.tenant] = len(self._codes)
        self._tenant[n] = code
        self._n = n + 1

    def remove(self, job_id: int) -> None:
        i = self._row.pop(job_id)
        last = self._n - 1
        if i != last:
            moved = int(self._ids[last])
            self._row[moved] = i
            for column in (
                self._ids,
                self._gpus,
                self._started,
                self._attained,
                self._preemptible,
                self._interval,
                self._checkpoint,
                self._end,
                self._node,
                self._span,
                self._tenant,
            ):
                column[i] = column[last]
        self._n = last

    def ids(self) -> npt.NDArray[np.int64]:
        return self._ids[: self._n]

    def gpus(self) -> npt.NDArray[np.float64]:
        return self._gpus[: self._n]

    def started_s(self) -> npt.NDArray[np.float64]:
        return self._started[: self._n]

    def attained_gpu_s(self) -> npt.NDArray[np.float64]:
        return self._attained[: self._n]

    def preemptible(self) -> npt.NDArray[np.bool_]:
        return self._preemptible[: self._n]

    def checkpoint_interval_s(self) -> npt.NDArray[np.float64]:
        return self._interval[: self._n]

    def last_checkpoint_s(self) -> npt.NDArray[np.float64]:
        return self._checkpoint[: self._n]

    def expected_end_s(self) -> npt.NDArray[np.float64]:
        return self._end[: self._n]

    def first_node(self) -> npt.NDArray[np.int64]:
        return self._node[: self._n]

    def node_count(self) -> npt.NDArray[np.int64]:
        return self._span[: self._n]

    def tenants(self) -> npt.NDArray[np.int64]:
        return self._tenant[: self._n]

    def tenant_code(self, tenant: str) -> int:
        """The code ``tenants()`` holds for ``tenant``'s rows (-1: none ever ran here)."""
        return self._codes.get(tenant, -1)


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
    # ``running`` as NumPy columns; ``None``: derive them (O(running) per call).
    running_columns: RunningColumns | None = None
    # ``pending`` split in two, each in (submit_s, id) order: jobs that never ran (``attained_gpu_s``
    # 0, ``restarts`` 0), then the others (requeued after a preemption); ``None``: not available.
    pending_parts: tuple[Collection[PendingJob], Sequence[PendingJob]] | None = None
    # The commons' inputs (design note 0006). ``awards``: each tenant's awards (``None``: the run has
    # no award stage, and quotas come from ``quota_gpus``); ``sovereign_tenants``: tenants whose jobs
    # stay on sovereign sites; ``site_draw``: projected draw of the running jobs (``None``: derive it).
    awards: Mapping[str, Sequence[Award]] | None = None
    sovereign_tenants: frozenset[str] = frozenset()
    site_draw: SiteDraw | None = None
    # Pending jobs that need no whole GPU (shared or CPU-only); ``None``: unknown. When 0 the cycle
    # stops as soon as no whole GPU is free.
    pending_fractional: int | None = None
    # Pending or running jobs of a priority class other than the default; ``None``: unknown. When 0
    # the cycle skips ordering by class (``policy/priority.py``).
    classed_jobs: int | None = None
    # Job arrays with a concurrency limit (at least those with a pending task): array id -> the most of
    # its tasks that may run at once (the ``array-limit`` stage; design note 0011). Empty: none.
    array_limits: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    # Reservations not yet over (the ``reservations`` stage; design note 0016). Empty: none.
    reservations: tuple[Reservation, ...] = ()

    def tenant_queues(self) -> Mapping[str, Collection[PendingJob]]:
        """Pending jobs grouped by tenant, each group in (submit_s, id) order."""
        if self.pending_by_tenant is not None:
            return self.pending_by_tenant
        groups: dict[str, list[PendingJob]] = {}
        for p in self.pending:
            groups.setdefault(p.job.tenant, []).append(p)
        return groups

    def columns(self) -> RunningColumns:
        """Running jobs as NumPy columns."""
        if self.running_columns is not None:
            return self.running_columns
        return RunningColumns.of(self.running.values())

    def ends(self) -> Sequence[tuple[float, int]]:
        """Running jobs' (expected end, job id), earliest first."""
        if self.running_ends is not None:
            return self.running_ends
        return sorted((r.expected_end_s(), r.job.id) for r in self.running.values())
