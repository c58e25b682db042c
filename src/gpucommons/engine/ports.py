"""Ports between the engine and the world. The simulator and the live service each provide one of
each; the engine and the policy core never know which."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from gpucommons.domain.job import Job, Placement
from gpucommons.errors import GpucError
from gpucommons.policy.decisions import CycleResult
from gpucommons.policy.snapshot import Snapshot


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
    unknown (the backend runs a job gpucommons does not know: ``job_id`` is 0, ``backend_ref`` says which)."""

    job_id: int
    kind: str
    at_s: float
    backend_ref: str = ""
    exit_code: int | None = None
    detail: str = ""


class LaunchUncertainError(GpucError):
    """A launch whose outcome is unknown: the backend may have accepted the job (an ``sbatch`` that
    timed out, and the lookup by name and comment that followed could not say). The engine keeps the
    job's ``pending:`` reference and its GPUs, and resolves it through ``adopt`` at its next steps;
    it neither fails nor relaunches it meanwhile."""


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


def max_call_s(backend: Backend) -> float:
    """The longest one backend operation (a launch, a poll) may take, from the backend's optional
    ``max_call_s`` attribute (0 when it has none): the engine's lease must outlast it."""
    value = getattr(backend, "max_call_s", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0
