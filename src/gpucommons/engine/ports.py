"""Ports between the engine and the world. The simulator and the live service each provide one of
each; the engine and the policy core never know which."""

from __future__ import annotations

from typing import Protocol

from gpucommons.domain.job import Job, Placement
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
