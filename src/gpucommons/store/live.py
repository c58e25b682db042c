"""``LiveStore``: the database-backed ``StateStore`` the live engine hands to ``run_cycle``.

It mirrors the simulator's ``InMemoryStore``: ``snapshot(now)`` builds the policy's view from rows and
``record(result, now)`` makes the decisions durable in the caller's transaction. The snapshot carries
the commons' inputs — every active award with its guarantee (after reclaims), model, budget and spend,
the sovereign projects, and the running jobs' awards — so the policy core's stages (award, residency,
quota, power; design note 0006) decide exactly as they do in a replay. Jobs the award stage refuses
keep the reason it gives (``no-award``, ``budget``, ``award-model``); a start records the award the
stage charged it to.

Started jobs get ``backend_ref = "pending:<launch id>"``: the engine commits that intent before it asks
the backend to launch, so a crash in between can be resolved by the backend (see ``LocalBackend.adopt``).
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gpucommons.domain.award import Award
from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job, Placement
from gpucommons.domain.power import PowerModel
from gpucommons.policy.capacity import Capacity
from gpucommons.policy.constraints.draw import SiteDraw
from gpucommons.policy.decisions import CycleResult, PendingReason
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot
from gpucommons.store.charging import end_segment
from gpucommons.store.jobs import AllocationRow, JobRow, UsageRow
from gpucommons.store.models import AwardRow, ProjectRow

PENDING_REF_PREFIX = "pending:"
USAGE_HORIZON_HALF_LIVES = 10  # older segments weigh < 0.1 % and are left out of decayed usage


def to_dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def to_s(at: datetime) -> float:
    return at.timestamp()


def job_of(row: JobRow, tenant: str, sovereign: bool = False) -> Job:
    """The policy's view of a job row; the time limit is both its estimate and (unknown) duration."""
    models = frozenset(str(m) for m in row.accepted_models or ())
    return Job(
        id=row.id,
        tenant=tenant,
        gpus=row.gpus,
        submit_s=to_s(row.submitted_at),
        duration_s=row.time_limit_s,
        estimate_s=row.time_limit_s,
        gpus_per_node=row.gpus_per_node,
        accepted_models=models,
        priority_class=row.priority_class,
        preemptible=row.preemptible,
        sovereign=sovereign,
    )


def award_of(row: AwardRow, tenant: str) -> Award:
    """The policy's view of an award row. ``guaranteed_gpus`` already has reclaims taken off."""
    return Award(
        id=row.id,
        tenant=tenant,
        guaranteed_gpus=row.guaranteed_gpus,
        models=frozenset([row.model]) if row.model else frozenset(),
        gpu_hours_budget=row.gpu_hours_budget,
        gpu_hours_used=row.gpu_hours_used,
        starts_s=to_s(row.starts_at),
        ends_s=to_s(row.ends_at),
    )


class LiveStore:
    """A ``StateStore`` over one session; build one per cycle (it caches that cycle's rows)."""

    def __init__(
        self,
        session: Session,
        cluster: Cluster,
        unavailable_nodes: set[str] | None = None,
        usage_half_life_s: float = 7 * 86_400.0,
    ) -> None:
        self.session = session
        self.cluster = cluster
        self.unavailable_nodes = unavailable_nodes or set()
        self.usage_half_life_s = usage_half_life_s
        self.rows: dict[int, JobRow] = {}
        self.preempted_refs: dict[int, str] = {}
        self._pending_ids: list[int] = []
        self._running_jobs: dict[int, RunningJob] = {}
        # Each site's projected draw: built with the snapshot (the power stage starts from it) and kept
        # through ``record``, so after a cycle it is the draw of what runs (``/metrics``).
        self.draw: SiteDraw | None = None

    # -- StateStore ------------------------------------------------------------------------------
    def snapshot(self, now: float) -> Snapshot:
        rows = list(self.session.scalars(select(ProjectRow)))
        projects = {p.id: p.name for p in rows}
        sovereign = frozenset(p.name for p in rows if p.sovereign)
        awards: defaultdict[str, list[Award]] = defaultdict(list)
        for award in self.session.scalars(
            select(AwardRow).where(AwardRow.status == "active").order_by(AwardRow.id)
        ):
            awards[projects[award.project_id]].append(award_of(award, projects[award.project_id]))
        pending = self._pending(projects)
        running, tenant_gpus, capacity = self._running(projects)
        self._running_jobs = running
        self.draw = SiteDraw(self.cluster, PowerModel(), (r.placement for r in running.values()))
        return Snapshot(
            cluster=self.cluster,
            capacity=capacity,
            pending=pending,
            running=running,
            tenant_usage_gpu_s=self._decayed_usage(projects, running, now),
            tenant_running_gpus=dict(tenant_gpus),
            awards={tenant: tuple(group) for tenant, group in awards.items()},
            sovereign_tenants=sovereign,
            site_draw=self.draw,
            pending_fractional=0,  # live jobs hold whole GPUs
        )

    def record(self, result: CycleResult, now: float) -> None:
        at = to_dt(now)
        for preemption in result.preemptions:
            if self.draw is not None:
                self.draw.remove(self._running_jobs[preemption.job_id].placement)
            row = self.rows[preemption.job_id]
            self.preempted_refs[row.id] = row.backend_ref
            end_segment(self.session, self.cluster, row, at)
            row.state, row.backend_ref, row.started_at = "pending", "", None
            row.restarts += 1
            by = f"preempted by job {preemption.by_job}" if preemption.by_job else preemption.reason
            row.reason_code, row.reason = "preempted", by
        for start in result.starts:
            if self.draw is not None:
                self.draw.add(start.placement)
            self._start(self.rows[start.job.id], start.placement, start.borrowing, start.award_id, at)
        started = {s.job.id for s in result.starts}
        examined = set()
        for job_id, reason in result.pending:
            examined.add(job_id)
            self._set_reason(self.rows[job_id], reason)
        if result.others is not None:
            for job_id in self._pending_ids:
                if job_id not in started and job_id not in examined:
                    self._set_reason(self.rows[job_id], result.others)
        self.session.flush()

    # -- helpers ---------------------------------------------------------------------------------
    def _pending(self, projects: dict[int, str]) -> list[PendingJob]:
        query = select(JobRow).where(JobRow.state == "pending").order_by(JobRow.submitted_at, JobRow.id)
        pending = []
        for row in self.session.scalars(query):
            self.rows[row.id] = row
            self._pending_ids.append(row.id)
            pending.append(
                PendingJob(
                    job_of(row, projects[row.project_id], sovereign=row.sovereign),
                    attained_gpu_s=row.attained_gpu_s,
                    queued_since_s=to_s(row.submitted_at),
                    restarts=row.restarts,
                )
            )
        return pending

    def _running(self, projects: dict[int, str]) -> tuple[dict[int, RunningJob], dict[str, int], Capacity]:
        capacity = Capacity(self.cluster)
        for down in self.cluster.nodes:
            if down.name in self.unavailable_nodes:
                capacity.set_up(down.index, False)
        per_job: defaultdict[int, defaultdict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
        for alloc in self.session.scalars(select(AllocationRow).order_by(AllocationRow.id)):
            per_job[alloc.job_id][alloc.node_index].append(alloc.gpu_index)
        running: dict[int, RunningJob] = {}
        tenant_gpus: defaultdict[str, int] = defaultdict(int)
        for row in self.session.scalars(select(JobRow).where(JobRow.state == "running")):
            self.rows[row.id] = row
            nodes: dict[int, list[int]] = per_job.get(row.id, {})
            for node, gpus in nodes.items():
                capacity.allocate_indices(node, gpus)
            placement = Placement(tuple((n, tuple(sorted(g))) for n, g in sorted(nodes.items())))
            job = job_of(row, projects[row.project_id], sovereign=row.sovereign)
            started_s = to_s(row.started_at) if row.started_at else 0.0
            running[row.id] = RunningJob(
                job, placement, started_s, row.attained_gpu_s, row.borrowing, row.award_id
            )
            tenant_gpus[job.tenant] += row.gpus
        return running, tenant_gpus, capacity

    def _decayed_usage(
        self, projects: dict[int, str], running: dict[int, RunningJob], now: float
    ) -> dict[str, float]:
        """Usage decayed by half every half-life, as ``UsageLedger`` computes it: a segment holding
        ``g`` GPUs over [a, b] contributes ``g * tau * (2^-(now-b)/h - 2^-(now-a)/h)``."""
        half = self.usage_half_life_s
        tau = half / math.log(2.0)
        since = to_dt(now - USAGE_HORIZON_HALF_LIVES * half)
        usage: defaultdict[str, float] = defaultdict(float)
        query = select(UsageRow.project_id, UsageRow.gpus, UsageRow.started_at, UsageRow.ended_at).where(
            UsageRow.ended_at > since
        )
        for project_id, gpus, started_at, ended_at in self.session.execute(query):
            a, b = to_s(started_at), to_s(ended_at)
            usage[projects[project_id]] += (
                gpus * tau * (2.0 ** (-(now - b) / half) - 2.0 ** (-(now - a) / half))
            )
        for r in running.values():
            usage[r.job.tenant] += r.job.gpus * tau * (1.0 - 2.0 ** (-max(0.0, now - r.started_s) / half))
        return dict(usage)

    def _start(
        self, row: JobRow, placement: Placement, borrowing: bool, award_id: int | None, at: datetime
    ) -> None:
        for node, gpus in placement.node_gpus:
            name = self.cluster.nodes[node].name
            for gpu in gpus:
                self.session.add(AllocationRow(job_id=row.id, node_index=node, node_name=name, gpu_index=gpu))
        row.state, row.started_at, row.borrowing = "running", at, borrowing
        row.award_id = award_id
        row.backend_ref = PENDING_REF_PREFIX + uuid.uuid4().hex
        row.reason_code, row.reason, row.estimated_start_at = "", "", None
        row.cancel_requested_at = None

    @staticmethod
    def _set_reason(row: JobRow, reason: PendingReason) -> None:
        estimated = to_dt(reason.estimated_start_s) if reason.estimated_start_s is not None else None
        if (row.reason_code, row.reason, row.estimated_start_at) != (reason.code, reason.detail, estimated):
            row.reason_code, row.reason, row.estimated_start_at = reason.code, reason.detail, estimated


def release(session: Session, job_id: int) -> None:
    """Drop a job's allocations without metering (a job that never really started)."""
    session.execute(delete(AllocationRow).where(AllocationRow.job_id == job_id))
