"""Simulated executor: a started job finishes once it has done its remaining work at the speed of the
devices it holds (design note 0009; speed 1 on a speed-blind cluster, where work is run time); a
preempted one loses its finish event and pays ``restart_overhead_s`` of extra run time when it starts
again (restoring a checkpoint, warming up), which counts as preemption loss.

What a preempted job keeps: by default all the work it did (as if it checkpointed at the instant it was
stopped). With ``checkpointing`` (design note 0016) only the work up to its last checkpoint, a multiple
of its declared ``checkpoint_interval_s`` after this run's start (none without an interval: it loses the
whole run), by the rule the policy's victim choice uses (``policy/lost_work.py``); the rest counts as
preemption loss too, so delivered GPU-seconds = work + loss still holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job, Placement
from gpucommons.policy.lost_work import seconds_since_checkpoint
from gpucommons.sim.kernel import EventQueue


@dataclass
class SimulatedExecutor:
    finishes: EventQueue[tuple[int, int]]
    restart_overhead_s: float = 30.0
    cluster: Cluster | None = None  # its speed table times each segment; None: every device at speed 1
    checkpointing: bool = False  # a preempted job keeps only the work up to its last checkpoint
    _left_work_s: dict[int, float] = field(default_factory=dict)  # reference-device seconds still to do
    _started_s: dict[int, float] = field(default_factory=dict)
    _speed: dict[int, float] = field(default_factory=dict)  # of the running segment
    _version: dict[int, int] = field(default_factory=dict)
    _jobs: dict[int, Job] = field(default_factory=dict)  # running jobs, kept with ``checkpointing``
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
        if self.checkpointing:
            self._jobs[job.id] = job
        version = self._version.get(job.id, 0) + 1
        self._version[job.id] = version
        self.finishes.push(now + (left if speed == 1.0 else left / speed), (job.id, version))

    def preempt(self, job_id: int, now: float) -> None:
        started_s = self._started_s.pop(job_id)
        done_s = now - started_s
        speed = self._speed.pop(job_id)
        if self.checkpointing:
            job = self._jobs.pop(job_id)
            lost_s = seconds_since_checkpoint(started_s, None, job.checkpoint_interval_s, now)
            self.loss_gpu_s += lost_s * job.gpus
            done_s -= lost_s
        self._left_work_s[job_id] -= done_s if speed == 1.0 else done_s * speed
        self._version[job_id] += 1  # the pending finish event becomes stale

    def is_current(self, job_id: int, version: int) -> bool:
        """Whether a popped finish event still stands; forgets the job when it does."""
        if self._version.get(job_id) != version:
            return False
        del self._left_work_s[job_id], self._started_s[job_id], self._speed[job_id], self._version[job_id]
        if self.checkpointing:
            del self._jobs[job_id]
        return True
