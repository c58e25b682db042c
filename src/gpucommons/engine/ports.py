"""Ports between the engine and the world. The simulator and the live service each provide one of
each; the engine and the policy core never know which.

``StateStore``, ``Clock`` and ``Executor`` are what ``run_cycle`` needs, in a replay and live. The live
engine needs more, and only through ports too: a ``Backend`` that runs jobs, and a ``SchedulerState``
(the database, implemented in ``store/scheduler_state.py``) whose transactions hold the lease, apply
the backend's events, record a cycle's decisions and keep each launch's bookkeeping. The engine never
sees a table, a session or SQL; the store never sees a backend.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from gpucommons.domain.arrays import ArrayTask
from gpucommons.domain.job import Job, Placement
from gpucommons.errors import ConflictError, GpucError
from gpucommons.policy.decisions import CycleResult
from gpucommons.policy.snapshot import Snapshot

PENDING_REF_PREFIX = "pending:"  # a start recorded but not yet launched: ``pending:<launch id>``

# What every live run finds in its environment besides its identity (design note 0016, "In the live
# service"): how often it was requeued before this run, where touching a file counts as a checkpoint,
# and the secret that lets it report a checkpoint through the API for itself and no other job.
RESTART_COUNT_ENV = "GPUC_RESTART_COUNT"
CHECKPOINT_FILE_ENV = "GPUC_CHECKPOINT_FILE"
JOB_TOKEN_ENV = "GPUC_JOB_TOKEN"
CHECKPOINT_FILE_PREFIX = ".gpuc-checkpoint-"

# A preempted run's grace period between the stop signal and the kill, by priority class, when the
# job named none; whatever the job or its class asks, the server's cap (``max_grace_s``) bounds it.
DEFAULT_GRACE_S: Mapping[str, float] = {"low": 30.0, "normal": 60.0, "high": 120.0}
FALLBACK_GRACE_S = 60.0  # a class the table does not name
DEFAULT_MAX_GRACE_S = 600.0


def grace_period_s(requested_s: float | None, priority_class: str, max_grace_s: float) -> float:
    """The grace period a preempted run gets: its own, else its class's default, at most the cap."""
    own = requested_s if requested_s is not None else DEFAULT_GRACE_S.get(priority_class, FALLBACK_GRACE_S)
    return max(0.0, min(own, max_grace_s))


def checkpoint_file(workdir: Path, job_id: int) -> Path:
    """The file a job touches to report a checkpoint: in its working directory, named for the job, so
    jobs that share a directory (on Slurm, one a user named for several) never read each other's."""
    return workdir / f"{CHECKPOINT_FILE_PREFIX}{job_id}"


class Clock(Protocol):
    """Seconds since the epoch of the run (simulated or real)."""

    def now(self) -> float: ...


class StateStore(Protocol):
    """Where jobs and allocations live: an in-memory store in the simulator, the database live."""

    def snapshot(self, now: float) -> Snapshot: ...

    def record(self, result: CycleResult, now: float) -> None:
        """Make the decisions durable: preempted jobs back to the queue, started jobs running."""
        ...


class Executor(Protocol):
    """Carries out decisions on real or simulated hardware."""

    def start(self, job: Job, placement: Placement, now: float) -> None: ...

    def preempt(self, job_id: int, now: float) -> None: ...


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a live backend needs to run one job segment on the placement the policy chose."""

    job_id: int
    command: tuple[str, ...]
    placement: Placement
    node_names: tuple[str, ...]  # one per placement entry, in order
    gpu_model: str
    time_limit_s: float
    workdir: Path  # where the job asked to run: Slurm's --chdir; the local backend runs each job in a
    # private directory of its own instead (backends/isolation.py), never in a path of the server's
    stdout_path: Path
    stderr_path: Path
    env: Mapping[str, str]
    account: str  # the project the job is charged to


@dataclass(frozen=True)
class BackendEvent:
    """A state change a live backend observed. ``kind``: started, finished, failed, cancelled, timeout,
    lost (the backend no longer knows the job), requeued (the backend put it back in its own queue),
    unknown (the backend runs a job gpucommons does not know: ``job_id`` is 0, ``backend_ref`` says which),
    checkpoint (the run touched its checkpoint file at ``at_s``).

    ``signalled_s``: on the end of a run the backend was told to preempt, when it sent the stop signal.
    A preemption's grace period is not charged: the segment such an end extends grows to the signal
    at most."""

    job_id: int
    kind: str
    at_s: float
    backend_ref: str = ""
    exit_code: int | None = None
    detail: str = ""
    signalled_s: float | None = None


class LaunchUncertainError(GpucError):
    """A launch whose outcome is unknown: the backend may have accepted the job (an ``sbatch`` that
    timed out, and the lookup by name and comment that followed could not say). The engine keeps the
    job's ``pending:`` reference and its GPUs, and resolves it through ``adopt`` at its next steps;
    it neither fails nor relaunches it meanwhile."""


class LaunchDeferredError(GpucError):
    """A launch whose GPUs (or whose job's own working directory) a run told to stop still holds,
    within its grace period. Nothing ran; the engine keeps the recorded start, its ``pending:``
    reference and its GPUs, and launches it again at a later step without deciding again, so a grace
    period of minutes never holds up the engine's step and no two runs ever hold one GPU."""


class NodeUnavailableError(GpucError):
    """A launch found a node of its placement out of service since the decision (drained between the
    step's look at the nodes and the launch). Nothing ran; the engine puts the job back in the queue
    without counting a failed attempt, and the next cycle places it elsewhere."""


class Backend(Protocol):
    """A live execution backend (local processes, Slurm). The live engine adapts it to ``Executor``.

    ``stops_unknown``: whether the engine stops what the backend reports as ``unknown``. True where
    everything it could report was started by gpucommons (the local backend's own state directory);
    False where a job merely named like ours may belong to someone else (Slurm): it is reported only.

    ``even_gangs``: whether a job must hold the same number of GPUs on every node it uses (one Slurm
    job carries a single per-node GPU request); the engine then fixes each job's gang shape before the
    policy places it."""

    name: str
    stops_unknown: bool
    even_gangs: bool

    def launch(self, spec: LaunchSpec) -> str:
        """Start the job; returns the backend's reference (a process group id, a Slurm job id)."""
        ...

    def cancel(self, job_id: int, backend_ref: str) -> None: ...

    def poll(self) -> list[BackendEvent]:
        """State changes since the last poll (finished, failed, lost, requeued, unknown...)."""
        ...

    def adopt(self, running: Sequence[tuple[int, str]]) -> list[BackendEvent]:
        """After a restart: reattach to jobs recorded as running (job id, backend ref); returns events
        for those that ended or vanished meanwhile. Never starts anything."""
        ...

    def unavailable_nodes(self) -> set[str]:
        """Node names the backend reports drained or down; their GPUs leave the snapshot."""
        ...


@runtime_checkable
class HoldsForeignGpus(Protocol):
    """Optional capability: a backend that runs jobs gpucommons does not own (Slurm) says which GPUs
    they hold, node name -> GPU count (``None``: the whole node), as of its last ``poll``. The engine
    takes them out of the snapshot, so it never places a job where the backend would keep it waiting."""

    def held_gpus(self) -> dict[str, int | None]: ...


@runtime_checkable
class StopsGracefully(Protocol):
    """Optional capability: a backend that preempts a run with its own grace period. ``preempt`` sends
    the stop signal now (SIGTERM to the local process group; Slurm's ``scancel --signal=TERM``) and
    kills the run once ``grace_s`` has passed, at the first ``poll`` after (the engine steps then, see
    ``next_deadline_s``); the run's end reports when the signal went (``BackendEvent.signalled_s``).
    Without it the engine preempts with ``cancel`` and the backend's own grace period."""

    def preempt(self, job_id: int, backend_ref: str, grace_s: float) -> None: ...

    def next_deadline_s(self) -> float | None:
        """The earliest time a stopping run's grace period ends (``None``: no run is stopping)."""
        ...


@runtime_checkable
class AcknowledgesEvents(Protocol):
    """Optional capability: a backend that keeps what it reported on durable storage until the commons
    has recorded it (the local backend: a run's end is kept in the job's directory). The engine calls
    ``acknowledge`` with the events of ``poll`` and ``adopt`` once the transaction that applied them
    has committed; an event never acknowledged (the server died in between) is reported again by the
    next ``adopt``, and applying it again changes nothing."""

    def acknowledge(self, events: Sequence[BackendEvent]) -> None: ...


def max_call_s(backend: Backend) -> float:
    """The longest one backend operation (a launch, a poll) may take, from the backend's optional
    ``max_call_s`` attribute (0 when it has none): the engine's lease must outlast it."""
    value = getattr(backend, "max_call_s", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0


# -- the live engine's durable state ----------------------------------------------------------------
def new_holder() -> str:
    """A scheduler's name in the lease, ``<host>:<pid>:<random>``: the store may take over at once a
    lease whose holder is a process of this host that no longer exists."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Lease:
    """A holding of the scheduler lease: ``epoch`` is its fencing token, bumped at every takeover."""

    holder: str
    epoch: int


class LeaseLostError(ConflictError):
    """The lease is no longer this scheduler's (taken over, or released): it must stop acting, and the
    transaction that found out stores nothing."""


class CycleConflictError(ConflictError):
    """A cycle's decisions conflict with what changed since its snapshot (a job it meant to preempt no
    longer runs the segment it saw, or a write the database refused): nothing of the cycle is stored,
    and the next step decides again."""


class StateUnavailableError(GpucError):
    """The state could not be read or written for a moment (the database busy or gone): the step is
    tried again at the next interval."""


@dataclass(frozen=True)
class LaunchRetry:
    """How failed launches are retried (Kueue's requeue with backoff): after the ``n``-th failure in a
    row the job waits ``min(backoff_max_s, backoff_s * 2 ** (n - 1))`` seconds; at ``max_attempts``
    it fails with the last error, so one job the backend keeps refusing never wedges the others."""

    max_attempts: int = 5
    backoff_s: float = 5.0
    backoff_max_s: float = 300.0

    def delay_s(self, attempts: int) -> float:
        return float(min(self.backoff_max_s, self.backoff_s * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True)
class RecordedStart:
    """A start the cycle recorded and the engine is about to launch: what the launch needs of the job."""

    job_id: int
    launch_id: str  # the ``<launch id>`` of its ``pending:`` reference
    command: tuple[str, ...]
    workdir: str  # as the job asked ("" for none)
    time_limit_s: float
    project_id: int
    cancel_requested: bool
    array: ArrayTask | None = None  # which task of which job array it is (``None``: a plain job)
    restarts: int = 0  # times it was requeued before this run (``GPUC_RESTART_COUNT``)


class CycleStore(StateStore, Protocol):
    """The ``StateStore`` of one live cycle, and what it recorded."""

    def recorded_starts(self) -> dict[int, str]:
        """Job id -> the ``pending:`` reference of each start recorded (a start decided on a job that
        changed since the snapshot is not recorded, and must not be launched)."""
        ...

    def preempted_ref(self, job_id: int) -> str:
        """The backend reference of the segment a recorded preemption ended ("" if none)."""
        ...

    def preempted_grace_s(self, job_id: int) -> float:
        """The grace period a recorded preemption's job asks for: its own, else its class's default
        (``grace_period_s`` without a cap); the engine bounds it by the server's cap."""
        ...

    def run_token(self, job_id: int) -> str:
        """The secret of a recorded start's run (``JOB_TOKEN_ENV``): the store keeps only its hash."""
        ...

    def site_power_w(self) -> dict[str, float] | None:
        """Each site's projected draw of what runs after the cycle (None before a snapshot)."""
        ...


class SchedulerTransaction(Protocol):
    """One transaction on the scheduler's state. Writes are kept only by ``commit``; the engine calls
    ``hold_lease`` last before it, so nothing commits unless the lease was still its own. Every write
    to a job takes it only in the state the caller expects (a running job with this reference, say),
    so a write of the API in between is never overwritten: a job that changed is left as it is."""

    def acquire_lease(self, holder: str, ttl_s: float) -> Lease | None:
        """Take or renew the lease; ``None`` while another holder's lease runs."""
        ...

    def hold_lease(self, lease: Lease, ttl_s: float) -> None:
        """Renew ``lease`` in this transaction, or raise ``LeaseLostError``."""
        ...

    def release_lease(self, holder: str) -> None: ...

    def running_jobs(self, *, cancel_requested: bool = False) -> list[tuple[int, str]]:
        """(job id, backend reference) of every running job (only those asked to cancel, if set)."""
        ...

    def apply_event(self, event: BackendEvent, max_lost_requeues: int, retry: LaunchRetry) -> bool:
        """Apply one backend event to its job; whether it changed anything."""
        ...

    def drained_nodes(self) -> frozenset[str]:
        """Names of the nodes an operator took out of service: nothing new is placed or launched there."""
        ...

    def cycle_store(
        self, unavailable_nodes: set[str], usage_half_life_s: float, held_gpus: dict[str, int | None]
    ) -> CycleStore:
        """The state store one cycle decides on, over the capacity left by unavailable nodes and by
        GPUs the backend's foreign jobs hold."""
        ...

    def recorded_start(self, job_id: int, intent: str) -> RecordedStart | None:
        """The start recorded as ``intent`` (a ``pending:`` reference), or ``None`` if the job no
        longer runs it."""
        ...

    def cancel_unlaunched(self, job_id: int, intent: str, at_s: float) -> None:
        """A recorded start asked to cancel before its launch: it ends ``cancelled``, uncharged."""
        ...

    def unplace(self, job_id: int, intent: str, why: str) -> None:
        """A recorded start that never ran goes back to the queue as it was: no charge, no attempt."""
        ...

    def launch_failed(self, job_id: int, intent: str, at_s: float, error: str, retry: LaunchRetry) -> None:
        """A launch that did not happen: the job waits out a backoff, or fails after the last try."""
        ...

    def record_launch(self, job_id: int, intent: str, backend: str, ref: str) -> bool | None:
        """The launch of ``intent`` runs as ``ref``: ``None`` if the job changed meanwhile (nothing
        records the launch: it must be stopped), else whether a cancel was asked meanwhile."""
        ...

    def commit(self) -> None:
        """Keep this transaction's writes; raises ``CycleConflictError`` when the state refuses them."""
        ...

    def rollback(self) -> None: ...


class SchedulerState(Protocol):
    """The live engine's durable state (the database in the service)."""

    def transaction(self) -> AbstractContextManager[SchedulerTransaction]:
        """A new transaction; one not committed when the block ends stores nothing. Raises
        ``StateUnavailableError`` when the state cannot be reached for a moment."""
        ...
