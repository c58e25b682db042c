"""The ``speed`` stage: on a mixed pool, send each job to the model where it would finish first
(design note 0009, the ``hetero`` policy).

A job that may run on several models (its accepted pools span them) is narrowed to the one with the
earliest estimated finish, ``start + remaining work / speed``. The remaining work is the job's time
limit (in reference-device seconds, as the work it declares) less the work its earlier runs did at the
speed of what they held (``PendingJob.done_work_s``). ``start`` is now where one node of the model
(or, for a job larger than a node, its nodes together) has the GPUs free; otherwise it comes from the
model's *availability profile* for this cycle: the GPUs its running jobs free by their time limits (at
their speed there), less what the jobs considered earlier in this cycle took or booked. Free GPUs
scattered over nodes too full for the job do not make it start now. A job that must wait for its
model books the GPUs it will take there, so the jobs behind it see that model busier and may take
another. A long job therefore waits for the fast devices instead of crawling on a slow one, while a
short job takes a slow device that is free rather than queue behind it. The job is still placed (or
preempts, under LAS) only on its chosen model, for that run only: the job it starts as keeps all its
models, so once preempted it chooses again (a long job pushed off a fast device by short ones goes on
on a slower one that is free instead of waiting). A job whose models all run at one speed, and every
job on a speed-blind cluster, passes untouched.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field, replace

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.policy.capacity import Capacity
from gpucommons.policy.decisions import Start
from gpucommons.policy.placement.shapes import job_pools
from gpucommons.policy.protocols import AdmitOnly, Admitted, Verdict
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot


@dataclass
class _Profile:
    """When GPUs of one model become available: ``(time, GPUs)``, sorted; what is free now is at
    ``now``."""

    entries: list[tuple[float, int]] = field(default_factory=list)

    def add(self, at_s: float, gpus: int) -> None:
        if gpus > 0:
            bisect.insort(self.entries, (at_s, gpus))

    def earliest(self, gpus: int, after_s: float = -float("inf")) -> float:
        """The first time after ``after_s`` at which ``gpus`` GPUs are available together (``inf``:
        never)."""
        have = 0
        for at_s, count in self.entries:
            have += count
            if have >= gpus and at_s > after_s:
                return at_s
        return float("inf")

    def take(self, gpus: int) -> float:
        """Book ``gpus`` GPUs at the earliest time they are available; returns that time."""
        have = 0
        for used, (at_s, count) in enumerate(self.entries, start=1):
            have += count
            if have >= gpus:
                del self.entries[:used]
                self.add(at_s, have - gpus)
                return at_s
        self.entries.clear()
        return float("inf")


@dataclass
class SpeedGate(AdmitOnly):
    cluster: Cluster
    capacity: Capacity
    now: float
    releases: dict[str, list[tuple[float, int]]] = field(default_factory=dict)  # by running jobs
    _profiles: dict[str, _Profile] = field(default_factory=dict)
    _pools: dict[str, list[int]] = field(default_factory=dict)  # model -> its pools
    _nodes: dict[int, range] = field(default_factory=dict)  # pool -> its nodes
    _work_left: dict[int, float] = field(default_factory=dict)  # job -> its remaining work, as admitted
    _unnarrowed: dict[int, Job] = field(default_factory=dict)  # job -> itself before this stage chose

    def __post_init__(self) -> None:
        first = 0
        for index, pool in enumerate(self.cluster.pools):  # Cluster.build lays each pool's nodes in a row
            self._nodes[index] = range(first, first + pool.node_count)
            first += pool.node_count
            self._pools.setdefault(pool.model.name, []).append(index)

    def _profile(self, model: str) -> _Profile:
        profile = self._profiles.get(model)
        if profile is None:
            profile = self._profiles[model] = _Profile()
            free = sum(self.capacity.free_gpus(n) for p in self._pools[model] for n in self._nodes[p])
            profile.add(self.now, free)
            for at_s, gpus in self.releases.get(model, ()):
                profile.add(max(self.now, at_s), gpus)
        return profile

    def admit(self, pending: PendingJob, admitted: Admitted | None) -> Verdict:
        job = pending.job if admitted is None else admitted.job
        speeds = self.cluster.speeds
        if speeds is None or job.gpus == 0:
            return admitted
        models = sorted({self.cluster.pools[p].model.name for p in job_pools(self.cluster, job)})
        if len(models) < 2:
            return admitted
        work_s = self._work_left[job.id] = max(0.0, job.estimate_s - pending.done_work_s())
        best: tuple[float, float, str, float] | None = None
        for model in models:
            speed = speeds.speed(job.job_class, model)
            start_s = self._start_s(model, job.gpus)
            finish = (start_s + work_s / speed, -speed, model, start_s)
            if best is None or finish < best:
                best = finish
        assert best is not None
        _, _, model, start_s = best
        if start_s > self.now:  # it waits for that model: book what it will take
            profile = self._profile(model)
            profile.take(job.gpus)
            profile.add(start_s + work_s / speeds.speed(job.job_class, model), job.gpus)
        borrowing = admitted is not None and admitted.borrowing
        self._unnarrowed[job.id] = job
        return Admitted(replace(job, accepted_models=frozenset({model})), borrowing)

    def _start_s(self, model: str, gpus: int) -> float:
        """When a job of ``gpus`` GPUs could start on ``model``: now if one of its nodes (or, for a
        job larger than a node, its nodes together) has them free, else when the model's running and
        booked jobs free enough of them (free GPUs scattered over nodes do not count as a start now)."""
        if self._fits_now(model, gpus):
            return self.now
        return self._profile(model).earliest(gpus, after_s=self.now)

    def _fits_now(self, model: str, gpus: int) -> bool:
        """Whether ``gpus`` free GPUs of ``model`` sit on one node (a job a node can hold) or on nodes
        together (a larger one); read from the capacity's free-count buckets, not node by node."""
        together = 0
        for pool in self._pools[model]:
            per_node = self.cluster.pools[pool].gpus_per_node
            if gpus <= per_node:
                if any(self.capacity.nodes_with_free(pool, free) for free in range(gpus, per_node + 1)):
                    return True
                continue
            together += sum(
                free * len(self.capacity.nodes_with_free(pool, free)) for free in range(1, per_node + 1)
            )
        return together >= gpus

    def started(self, start: Start) -> Start:
        if self.cluster.speeds is None or not start.placement.node_gpus:
            return start
        model = self.cluster.nodes[start.placement.node_gpus[0][0]].model
        speed = self.cluster.run_speed(start.job.job_class, start.placement.nodes)
        profile = self._profile(model)
        if profile.earliest(start.job.gpus) <= self.now:  # not booked while waiting: it takes them now
            profile.take(start.job.gpus)
        work_s = self._work_left.get(start.job.id, start.job.estimate_s)
        profile.add(self.now + work_s / speed, start.job.gpus)
        # The choice holds for this run only: a preempted job may choose again among all its models.
        unnarrowed = self._unnarrowed.get(start.job.id)
        return start if unnarrowed is None else replace(start, job=unnarrowed)

    def preempted(self, running: RunningJob) -> None:
        entry = _release(self.cluster, running)
        if entry is not None:
            model, (end_s, gpus) = entry
            profile = self._profile(model)
            booked = (max(self.now, end_s), gpus)
            if booked in profile.entries:  # it frees them now instead of by its time limit
                profile.entries.remove(booked)
            profile.add(self.now, gpus)


def _release(cluster: Cluster, running: RunningJob) -> tuple[str, tuple[float, int]] | None:
    """The model a running job holds and when it frees its GPUs there, by its time limit."""
    if not running.placement.node_gpus:
        return None
    model = cluster.nodes[running.placement.node_gpus[0][0]].model
    speed = cluster.run_speed(running.job.job_class, running.placement.nodes)
    end_s = running.started_s + max(0.0, running.job.estimate_s - running.done_work_s()) / speed
    return model, (end_s, running.job.gpus)


@dataclass(frozen=True)
class SpeedStage:
    name: str = "speed"

    def open(self, snapshot: Snapshot, now: float) -> SpeedGate | None:
        if snapshot.cluster.speeds is None:
            return None
        gate = SpeedGate(snapshot.cluster, snapshot.capacity, now)
        for running in snapshot.running.values():
            entry = _release(snapshot.cluster, running)
            if entry is not None:
                gate.releases.setdefault(entry[0], []).append(entry[1])
        return gate
