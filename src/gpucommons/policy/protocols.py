"""The pluggable pieces of a policy, as small Protocols defined by their one consumer (``cycle.py``).

A ``PolicyConfig`` bundles one of each. Policies differ only in which pieces they bundle; the cycle
never looks at a policy's name.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from gpucommons.domain.job import Job, Placement
from gpucommons.policy.capacity import Capacity
from gpucommons.policy.decisions import PendingReason
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot


class Ordering(Protocol):
    """Puts the queue in the order jobs are considered (highest priority first)."""

    def order(self, snapshot: Snapshot, now: float) -> Iterable[PendingJob]: ...


class Gate(Protocol):
    """Per-cycle state of a queue discipline: may a job start out of turn?"""

    def check(self, pending: PendingJob, now: float) -> PendingReason | None: ...

    def blocked(self, pending: PendingJob, reason: PendingReason, now: float) -> PendingReason: ...

    def started(self, pending: PendingJob, now: float) -> None: ...

    def closed(self) -> PendingReason | None:
        """Not ``None`` once no later job may start this cycle (the reason they all wait)."""
        ...


class Discipline(Protocol):
    """What happens behind a job that cannot start: strict line, EASY backfill, or skip-ahead."""

    def open(self, snapshot: Snapshot, now: float) -> Gate: ...


class Placer(Protocol):
    """Chooses nodes and devices for a job and allocates them in ``capacity``, or returns ``None``."""

    def place(self, job: Job, capacity: Capacity) -> Placement | None: ...


class AdmissionGate(Protocol):
    """Per-cycle quota bookkeeping. ``check`` returns (reason to wait, whether the start borrows)."""

    def check(self, pending: PendingJob) -> tuple[PendingReason | None, bool]: ...

    def started(self, job: Job, borrowing: bool) -> None: ...

    def preempted(self, running: RunningJob) -> None: ...


class Admission(Protocol):
    def open(self, snapshot: Snapshot, now: float) -> AdmissionGate: ...


class Preemptor(Protocol):
    """Running jobs that ``pending`` may displace, best victim first (empty: none)."""

    def candidates(
        self, pending: PendingJob, borrowing: bool, snapshot: Snapshot, now: float
    ) -> Sequence[RunningJob]: ...

    def scope_key(self, pending: PendingJob, borrowing: bool) -> Hashable:
        """Pending jobs with equal keys get the same candidates within one cycle (the cycle caches
        them; e.g. the LAS queue level, or the tenant)."""
        ...


@dataclass(frozen=True)
class PolicyConfig:
    """One complete policy. ``name`` is for reports only."""

    name: str
    ordering: Ordering
    discipline: Discipline
    placer: Placer
    admission: Admission | None = None
    preemptor: Preemptor | None = None
    scan_limit: int = 500  # jobs examined per cycle, as Slurm's bf_max_job_test bounds backfill
    full_scan_limit: int = (
        100  # jobs that may try preemption once nothing is free; Slurm's default_queue_depth
    )
