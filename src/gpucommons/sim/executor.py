"""Simulated executor: a started job finishes after its remaining work; a preempted one loses its
finish event and pays ``restart_overhead_s`` of extra run time when it starts again (the recorded
preemption loss: restoring a checkpoint, warming up)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gpucommons.domain.job import Job, Placement
from gpucommons.sim.kernel import EventQueue


@dataclass
class SimulatedExecutor:
    finishes: EventQueue[tuple[int, int]]
    restart_overhead_s: float = 30.0
    _left_s: dict[int, float] = field(default_factory=dict)
    _started_s: dict[int, float] = field(default_factory=dict)
    _version: dict[int, int] = field(default_factory=dict)
    loss_gpu_s: float = 0.0

    def start(self, job: Job, placement: Placement, now: float) -> None:
        left = self._left_s.get(job.id)
        if left is None:
            left = job.duration_s
        else:
            left += self.restart_overhead_s
            self.loss_gpu_s += self.restart_overhead_s * job.gpus
        self._left_s[job.id] = left
        self._started_s[job.id] = now
        version = self._version.get(job.id, 0) + 1
        self._version[job.id] = version
        self.finishes.push(now + left, (job.id, version))

    def preempt(self, job_id: int, now: float) -> None:
        self._left_s[job_id] -= now - self._started_s.pop(job_id)
        self._version[job_id] += 1  # the pending finish event becomes stale

    def is_current(self, job_id: int, version: int) -> bool:
        """Whether a popped finish event still stands; forgets the job when it does."""
        if self._version.get(job_id) != version:
            return False
        del self._left_s[job_id], self._started_s[job_id], self._version[job_id]
        return True
