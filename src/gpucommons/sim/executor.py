"""Simulated executor: a started job finishes once it has done its remaining work at the speed of the
devices it holds (design note 0009; speed 1 on a speed-blind cluster, where work is run time); a
preempted one keeps the work it did, loses its finish event, and pays ``restart_overhead_s`` of extra
run time when it starts again (the recorded preemption loss: restoring a checkpoint, warming up)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job, Placement
from gpucommons.sim.kernel import EventQueue


@dataclass
class SimulatedExecutor:
    finishes: EventQueue[tuple[int, int]]
    restart_overhead_s: float = 30.0
    cluster: Cluster | None = None  # its speed table times each segment; None: every device at speed 1
    _left_work_s: dict[int, float] = field(default_factory=dict)  # reference-device seconds still to do
    _started_s: dict[int, float] = field(default_factory=dict)
    _speed: dict[int, float] = field(default_factory=dict)  # of the running segment
    _version: dict[int, int] = field(default_factory=dict)
    loss_gpu_s: float = 0.0

    def start(self, job: Job, placement: Placement, now: float) -> None:
        speed = 1.0
        if self.cluster is not None and self.cluster.speeds is not None:
            speed = self.cluster.run_speed(job.job_class, placement.nodes)
        left = self._left_work_s.get(job.id)
        if left is None:
            left = job.duration_s
        else:
            left += self.restart_overhead_s * speed  # the overhead is wall time on these devices
            self.loss_gpu_s += self.restart_overhead_s * job.gpus
        self._left_work_s[job.id] = left
        self._started_s[job.id] = now
        self._speed[job.id] = speed
        version = self._version.get(job.id, 0) + 1
        self._version[job.id] = version
        self.finishes.push(now + (left if speed == 1.0 else left / speed), (job.id, version))

    def preempt(self, job_id: int, now: float) -> None:
        done_s = now - self._started_s.pop(job_id)
        speed = self._speed.pop(job_id)
        self._left_work_s[job_id] -= done_s if speed == 1.0 else done_s * speed
        self._version[job_id] += 1  # the pending finish event becomes stale

    def is_current(self, job_id: int, version: int) -> bool:
        """Whether a popped finish event still stands; forgets the job when it does."""
        if self._version.get(job_id) != version:
            return False
        del self._left_work_s[job_id], self._started_s[job_id], self._speed[job_id], self._version[job_id]
        return True
