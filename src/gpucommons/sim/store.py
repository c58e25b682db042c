"""In-memory ``StateStore`` for the simulator: the queue, running jobs, free capacity and usage."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import NamedTuple

from gpucommons.domain.award import Award, charge_rate
from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.domain.power import PowerModel
from gpucommons.domain.reservation import Reservation
from gpucommons.metering.pricing import SECONDS_PER_HOUR
from gpucommons.policy.capacity import Capacity
from gpucommons.policy.constraints.draw import SiteDraw
from gpucommons.policy.decisions import CycleResult
from gpucommons.policy.priority import DEFAULT_CLASS
from gpucommons.policy.snapshot import PendingJob, RunningColumns, RunningJob, Snapshot
from gpucommons.policy.usage import UsageLedger
from gpucommons.sim.queue import JobQueue, TenantQueues


@dataclass
class JobRecord:
    """What the simulator learns about one job, for metrics."""

    job: Job
    first_start_s: float | None = None
    end_s: float | None = None
    preemptions: int = 0
    run_s: float = 0.0  # wall seconds holding GPUs, all segments


class Segment(NamedTuple):
    """One uninterrupted stretch a job held its devices: where, on what, how many, when. (A named
    tuple: a replay makes one per run segment, hundreds of thousands.)"""

    job_id: int
    tenant: str
    site: str
    model: str
    devices: float  # whole devices, or the share of one (gpu_milli / 1000)
    start_s: float
    end_s: float


def _fractional(job: Job) -> bool:
    return job.gpus == 0 or job.shared


class InMemoryStore:
    def __init__(
        self,
        cluster: Cluster,
        quota_gpus: Mapping[str, int] | None = None,
        usage_half_life_s: float = 7 * 86_400.0,
        power_model: PowerModel = PowerModel(),
        awards: Mapping[str, Sequence[Award]] | None = None,
        sovereign_tenants: frozenset[str] = frozenset(),
        array_limits: Mapping[int, int] | None = None,
        reservations: tuple[Reservation, ...] = (),
    ) -> None:
        self.cluster = cluster
        self.draw = SiteDraw(cluster, power_model)
        site_of_pool = {p.name: p.site for p in cluster.pools}
        self._node_where = [(site_of_pool[n.pool], n.model) for n in cluster.nodes]  # for segments
        self.segments: list[Segment] = []
        # Awards are charged when a segment ends, as the live service charges award rows.
        self.awards: dict[str, list[Award]] | None = (
            None if awards is None else {t: list(a) for t, a in awards.items()}
        )
        self._award_at: dict[int, tuple[str, int]] = {
            a.id: (t, i) for t, group in (self.awards or {}).items() for i, a in enumerate(group)
        }
        self.sovereign_tenants = sovereign_tenants
        self.array_limits = MappingProxyType(dict(array_limits or {}))  # job arrays' ``%N``
        self.reservations = reservations  # handed to every snapshot (design note 0016)
        self.pending_fractional = 0  # pending jobs needing no whole GPU (shared or CPU-only)
        self.classed_jobs = 0  # pending or running jobs of a non-default priority class
        self.capacity = Capacity(cluster)
        self.pending = JobQueue()
        self.running: dict[int, RunningJob] = {}
        self.records: dict[int, JobRecord] = {}
        self.tenant_running_gpus: dict[str, int] = {}
        self.ledger = UsageLedger(usage_half_life_s)
        self.quota_gpus = MappingProxyType(dict(quota_gpus or {}))
        self.busy_gpus = 0
        self._ends: list[tuple[float, int]] = []  # (expected end, job id) of running jobs, sorted
        self._by_tenant: dict[str, JobQueue] = {}  # tenants with pending jobs
        self._columns = RunningColumns()  # ``running`` as NumPy columns
        # Read-only views of the state above, made once: a replay builds a snapshot per cycle.
        self._running_view = MappingProxyType(self.running)
        self._tenant_gpus_view = MappingProxyType(self.tenant_running_gpus)
        self._tenant_queues = TenantQueues(self._by_tenant)
        self._awards_view = None if self.awards is None else MappingProxyType(self.awards)

    # -- StateStore ------------------------------------------------------------------------------
    def snapshot(self, now: float) -> Snapshot:
        return Snapshot(
            cluster=self.cluster,
            capacity=self.capacity,
            pending=self.pending.view(),
            running=self._running_view,
            tenant_usage_gpu_s=self.ledger.at(now),
            tenant_running_gpus=self._tenant_gpus_view,
            quota_gpus=self.quota_gpus,
            running_ends=self._ends,
            pending_by_tenant=self._tenant_queues,
            running_columns=self._columns,
            pending_parts=self.pending.parts(),
            awards=self._awards_view,
            sovereign_tenants=self.sovereign_tenants,
            site_draw=self.draw,
            pending_fractional=self.pending_fractional,
            classed_jobs=self.classed_jobs,
            array_limits=self.array_limits,
            reservations=self.reservations,
        )

    def record(self, result: CycleResult, now: float) -> None:
        for preemption in result.preemptions:
            self._stop(preemption.job_id, now, requeue=True)
        for start in result.starts:
            pending = self._unqueue(start.job)
            self.capacity.take(start.placement)  # GPUs, shares, CPU and memory (design note 0002)
            self.draw.add(start.placement)
            running = RunningJob(
                start.job,
                start.placement,
                now,
                pending.attained_gpu_s,
                start.borrowing,
                start.award_id,
                work_s=pending.work_s,
            )
            self.running[start.job.id] = running
            insort(self._ends, (running.expected_end_s(), start.job.id))
            self._columns.add(running)
            self._hold(start.job, start.job.gpus, now)
            record = self.records[start.job.id]
            if record.first_start_s is None:
                record.first_start_s = now

    # -- simulator events ------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        pending = PendingJob(job, queued_since_s=job.submit_s)
        if _fractional(job):
            self.pending_fractional += 1
        if job.priority_class != DEFAULT_CLASS:
            self.classed_jobs += 1
        self.pending.arrive(pending)
        self._tenant_queue(job.tenant).arrive(pending)
        self.records[job.id] = JobRecord(job)

    def _tenant_queue(self, tenant: str) -> JobQueue:
        queue = self._by_tenant.get(tenant)
        if queue is None:
            queue = self._by_tenant[tenant] = JobQueue()
        return queue

    def _unqueue(self, job: Job) -> PendingJob:
        queue = self._by_tenant[job.tenant]
        queue.pop(job.id, job.submit_s)
        if not len(queue):
            del self._by_tenant[job.tenant]
        if _fractional(job):
            self.pending_fractional -= 1
        return self.pending.pop(job.id, job.submit_s)

    def finish(self, job_id: int, now: float) -> None:
        self._stop(job_id, now, requeue=False)
        record = self.records[job_id]
        record.end_s = now
        if record.job.priority_class != DEFAULT_CLASS:
            self.classed_jobs -= 1

    def _stop(self, job_id: int, now: float, requeue: bool) -> None:
        running = self.running.pop(job_id)
        del self._ends[bisect_left(self._ends, (running.expected_end_s(), job_id))]
        self._columns.remove(job_id)
        self.capacity.give(running.placement)
        self.draw.remove(running.placement)
        placement = running.placement
        if placement.node_gpus:
            site, model = self._node_where[placement.node_gpus[0][0]]
            devices = placement.gpus * placement.milli / 1000
        else:  # CPU-only
            site, model, devices = "", "", 0.0
        self.segments.append(
            Segment(job_id, running.job.tenant, site, model, devices, running.started_s, now)
        )
        self._hold(running.job, -running.job.gpus, now)
        if running.award_id is not None:
            self._charge(running, running.award_id, now)
        record = self.records[job_id]
        record.run_s += now - running.started_s
        if requeue:
            record.preemptions += 1
            pending = PendingJob(
                running.job,
                running.attained_at(now),
                queued_since_s=now,
                restarts=record.preemptions,
                work_s=self._work_at(running, now),
            )
            if _fractional(running.job):
                self.pending_fractional += 1
            self.pending.requeue(pending)
            self._tenant_queue(running.job.tenant).requeue(pending)

    def _work_at(self, running: RunningJob, now: float) -> float | None:
        """The work ``running`` has done by ``now`` at the speed of what it holds; ``None`` on a
        speed-blind cluster, where that is its attained time."""
        if self.cluster.speeds is None or not running.placement.node_gpus:
            return running.work_s
        speed = self.cluster.run_speed(running.job.job_class, running.placement.nodes)
        return running.done_work_s() + max(0.0, now - running.started_s) * speed

    def _charge(self, running: RunningJob, award_id: int, now: float) -> None:
        if self.awards is None:
            return
        tenant, i = self._award_at[award_id]
        award = self.awards[tenant][i]
        model = self._node_where[running.placement.node_gpus[0][0]][1] if running.placement.node_gpus else ""
        rate = charge_rate(award, self.cluster, running.job, model)
        used = award.gpu_hours_used + running.job.gpus * (now - running.started_s) / SECONDS_PER_HOUR * rate
        self.awards[tenant][i] = replace(award, gpu_hours_used=used)

    def _hold(self, job: Job, delta_gpus: int, now: float) -> None:
        self.busy_gpus += delta_gpus
        self.tenant_running_gpus[job.tenant] = self.tenant_running_gpus.get(job.tenant, 0) + delta_gpus
        self.ledger.change(job.tenant, delta_gpus, now)
