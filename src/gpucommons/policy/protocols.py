"""The pluggable pieces of a policy, as small Protocols defined by their one consumer (``cycle.py``).

A ``PolicyConfig`` bundles an ordering, a discipline, a placer, an ordered list of admission stages
and an optional preemptor. Policies differ only in which pieces they bundle; the cycle never looks at
a policy's name. A new rule of the commons (a constraint on who may start where) is a ``Stage``: one
module in ``policy/constraints/`` (design note 0006).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, TypeAlias, runtime_checkable

from gpucommons.domain.job import Job, Placement
from gpucommons.policy.capacity import Capacity
from gpucommons.policy.decisions import PendingReason, Start
from gpucommons.policy.priority import DEFAULT_CLASSES, PriorityClasses
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot


class Ordering(Protocol):
    """Puts the queue in the order jobs are considered (highest priority first)."""

    def order(self, snapshot: Snapshot, now: float) -> Iterable[PendingJob]: ...


class Gate(Protocol):
    """Per-cycle state of a queue discipline: may a job start out of turn?"""

    passes_all: bool
    """``check`` never refuses and ``blocked`` returns its reason unchanged (skip-ahead): the scan may
    then give a job whose shape already failed this cycle that reason without asking the gate."""

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


@runtime_checkable
class WorkloadAware(Protocol):
    """Optional placer capability: score against a request mix given explicitly (FGD). The replay
    and the fill experiment give the whole trace once; the live engine gives the jobs pending and
    running at each cycle. ``place`` never learns the mix by itself."""

    def observe_workload(self, jobs: Iterable[Job]) -> None: ...


@runtime_checkable
class Seeded(Protocol):
    """Optional placer capability: ties are broken by an order drawn from a seed (FGD's node order, as
    in the paper's simulator). The fill experiment and the replay pass their seed, so a run is
    reproducible from its seed alone."""

    def reseed(self, seed: int) -> None: ...


class Admitted(NamedTuple):
    """A job the stages so far let through: the job as it may be placed (a stage may narrow its
    models or sites, or fix its gang shape) and whether starting it would borrow beyond a guarantee.
    (A named tuple: the quota stage makes one for every borrowing job it examines, and a tuple costs a
    third of a frozen dataclass to build.)"""

    job: Job
    borrowing: bool = False


class _Borrows:
    """The type of ``BORROWS``."""

    def __repr__(self) -> str:
        return "BORROWS"


BORROWS = _Borrows()
"""What ``StageGate.admit`` returns for "let it through as it is, but it borrows": the quota stage
says this of most jobs in a busy cycle, so it must cost no allocation."""


Verdict: TypeAlias = "Admitted | PendingReason | _Borrows | None"
"""What a stage says of a job before placement (see ``StageGate.admit``)."""


class StageGate(Protocol):
    """One admission stage's state for one cycle. The cycle calls ``admit`` before placement (in stage
    order, each seeing what the previous stages made of the job: ``None`` while it is still the job
    as submitted and not borrowing), ``accept`` on the placement found (with the victims it would
    displace), and ``started`` / ``preempted`` to keep the stage's running tallies. ``admit`` returns
    ``None`` to let the job through unchanged (the common case costs no allocation), an ``Admitted``
    to narrow it or mark it borrowing, or the reason it waits. A gate whose ``admit`` never does
    either may say ``admits_all = True``: the cycle then leaves it out of the per-job admission loop."""

    checks_placements: bool
    """Whether ``accept`` can refuse anything (the cycle skips the call, and the undo mark it needs,
    for stages that only admit)."""

    def admit(self, pending: PendingJob, admitted: Admitted | None) -> Verdict: ...

    def accept(
        self, job: Job, placement: Placement, victims: Sequence[RunningJob]
    ) -> PendingReason | None: ...

    def started(self, start: Start) -> Start:
        """Book a start; may annotate it (e.g. with the award it is charged to)."""
        ...

    def preempted(self, running: RunningJob) -> None: ...

    def evictions(self) -> Sequence[tuple[RunningJob, str]]:
        """Running jobs this stage requires stopped before anything starts (a cap that fell), with
        the reason; asked once, when the cycle opens."""
        ...


@runtime_checkable
class SitePreference(Protocol):
    """Optional gate capability: the order in which to try the sites a job may use (design note 0006,
    ``constraints/siting.py``). The cycle places the job at the first site that takes it."""

    def site_order(self, job: Job) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class Fence:
    """Nodes a job may not be placed on this cycle (the nodes reservations hold, design note 0016).
    ``key`` names what fences it (the reservations' ids): jobs of one shape and one key fit or fail
    alike, so the cycle's failed-shape cache keys on it."""

    key: Hashable
    nodes: tuple[int, ...]


@runtime_checkable
class NodeFence(Protocol):
    """Optional gate capability (``constraints/reservations.py``): nodes a job must not use, the jobs
    that may start out of turn on nodes held for them, and why a fenced job that found no room waits."""

    def fence_for(self, pending: PendingJob) -> Fence | None:
        """The nodes the job may not be placed on now (``None``: none). Asked of the job as submitted:
        what a stage may narrow (models, sites, gang shape) does not change it."""
        ...

    def held_for(self) -> Sequence[tuple[tuple[int, ...], Sequence[PendingJob]]]:
        """Held nodes and the pending jobs that may start on them before the queue is scanned (a
        reservation's own jobs during its window: they take nothing the jobs ahead of them could use)."""
        ...

    def fenced_reason(self, fence: Fence, pending: PendingJob, free_gpus: int) -> PendingReason | None:
        """Why a fenced job that did not fit waits (``None``: for want of room, as any job);
        ``free_gpus``: whole GPUs free, the fenced nodes' included."""
        ...


class AdmitOnly:
    """The hooks of a stage that only admits (narrows or refuses before placement) and keeps no tally:
    inherit them instead of writing four no-ops."""

    checks_placements = False

    def accept(self, job: Job, placement: Placement, victims: Sequence[RunningJob]) -> PendingReason | None:
        return None

    def started(self, start: Start) -> Start:
        return start

    def preempted(self, running: RunningJob) -> None:
        return None

    def evictions(self) -> Sequence[tuple[RunningJob, str]]:
        return ()


class Stage(Protocol):
    """An admission rule. ``open`` returns ``None`` when the rule has nothing to check this cycle (no
    capped site, no awards), so an unused rule costs nothing per job."""

    @property
    def name(self) -> str: ...

    def open(self, snapshot: Snapshot, now: float) -> StageGate | None: ...


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
    stages: tuple[Stage, ...] = ()
    preemptor: Preemptor | None = None
    priority_classes: PriorityClasses = DEFAULT_CLASSES
    # Victims of priority preemption that lose the least work first (``policy/lost_work.py``); the
    # policy's preemptor and stages carry their own switch (``Commons.checkpoint_aware`` sets all).
    checkpoint_aware: bool = False
    scan_limit: int = 500  # jobs examined per cycle, as Slurm's bf_max_job_test bounds backfill
    full_scan_limit: int = (
        100  # jobs that may try preemption once nothing is free; Slurm's default_queue_depth
    )
