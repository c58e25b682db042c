"""``LiveStore``: the database-backed ``StateStore`` the live engine hands to ``run_cycle``.

It mirrors the simulator's ``InMemoryStore``: ``snapshot(now)`` builds the policy's view from rows and
``record(result, now)`` makes the decisions durable in the caller's transaction. Before the policy runs,
an admission filter keeps back jobs whose project has no active award, or whose awards' GPU-hour budgets
are spent; those stay pending with that reason (``no-award`` / ``budget``) and the policy never sees them.
An award grants GPUs of one accelerator model, so a job runs only on its award's model: a job that named
no models is offered that model alone, and a job that accepts only other models waits (``award-model``).

Started jobs get ``backend_ref = "pending:<launch id>"``: the engine commits that intent before it asks
the backend to launch, so a crash in between can be resolved by the backend (see ``LocalBackend.adopt``).
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job, Placement
from gpucommons.policy.capacity import Capacity
from gpucommons.policy.decisions import CycleResult, PendingReason
from gpucommons.policy.placement.shapes import even_gang
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


def active_award(
    awards: list[AwardRow], now: datetime, models: frozenset[str] = frozenset()
) -> tuple[AwardRow | None, str, str]:
    """The award a job of this project is charged to now (the one ending first), or why there is none.
    ``models`` are the job's accepted accelerator models (empty: any); only an award for one of them
    can pay for it."""
    current = [a for a in awards if a.status == "active" and a.starts_at <= now < a.ends_at]
    if not current:
        return None, "no-award", "the project has no active award"
    funded = [a for a in current if a.gpu_hours_budget is None or a.gpu_hours_used < a.gpu_hours_budget]
    if not funded:
        a = current[0]
        return (
            None,
            "budget",
            f"award {a.id} has used {a.gpu_hours_used:.2f} of {a.gpu_hours_budget:g} GPU-hours",
        )
    accepted = {m.lower() for m in models}
    usable = [a for a in funded if not accepted or a.model.lower() in accepted]
    if not usable:
        granted = ", ".join(sorted({a.model for a in funded}))
        return (
            None,
            "award-model",
            f"the project's awards are for {granted}; the job accepts only {', '.join(sorted(models))}",
        )
    usable.sort(key=lambda a: (a.ends_at, a.id))
    return usable[0], "", ""


def job_of(row: JobRow, tenant: str, award_model: str | None = None) -> Job:
    """The policy's view of a job row; the time limit is both its estimate and (unknown) duration.
    A job that named no models runs on its award's ``award_model`` only."""
    models = frozenset(str(m) for m in row.accepted_models or ())
    return Job(
        id=row.id,
        tenant=tenant,
        gpus=row.gpus,
        submit_s=to_s(row.submitted_at),
        duration_s=row.time_limit_s,
        estimate_s=row.time_limit_s,
        gpus_per_node=row.gpus_per_node,
        accepted_models=models or frozenset([award_model] if award_model else ()),
        priority_class=row.priority_class,
        preemptible=row.preemptible,
    )


@dataclass
class _Admitted:
    row: JobRow
    award_id: int


class LiveStore:
    """A ``StateStore`` over one session; build one per cycle (it caches that cycle's rows)."""

    def __init__(
        self,
        session: Session,
        cluster: Cluster,
        unavailable_nodes: set[str] | None = None,
        usage_half_life_s: float = 7 * 86_400.0,
        even_gangs: bool = False,
    ) -> None:
        self.session = session
        self.cluster = cluster
        self.even_gangs = even_gangs
        self.unavailable_nodes = unavailable_nodes or set()
        self.usage_half_life_s = usage_half_life_s
        self.rows: dict[int, JobRow] = {}
        self.preempted_refs: dict[int, str] = {}
        self._admitted: dict[int, _Admitted] = {}

    # -- StateStore ------------------------------------------------------------------------------
    def snapshot(self, now: float) -> Snapshot:
        at = to_dt(now)
        projects = {p.id: p.name for p in self.session.scalars(select(ProjectRow))}
        awards: defaultdict[int, list[AwardRow]] = defaultdict(list)
        for award in self.session.scalars(select(AwardRow).where(AwardRow.status == "active")):
            awards[award.project_id].append(award)
        pending = self._admit(projects, awards, at)
        running, tenant_gpus, capacity = self._running(projects)
        quotas: defaultdict[str, int] = defaultdict(int)
        for project_id, project_awards in awards.items():
            for a in project_awards:
                if a.starts_at <= at < a.ends_at:
                    quotas[projects[project_id]] += max(0, a.guaranteed_gpus - a.reclaimed_gpus)
        return Snapshot(
            cluster=self.cluster,
            capacity=capacity,
            pending=pending,
            running=running,
            tenant_usage_gpu_s=self._decayed_usage(projects, running, now),
            tenant_running_gpus=dict(tenant_gpus),
            quota_gpus=dict(quotas),
        )

    def record(self, result: CycleResult, now: float) -> None:
        at = to_dt(now)
        for preemption in result.preemptions:
            row = self.rows[preemption.job_id]
            self.preempted_refs[row.id] = row.backend_ref
            end_segment(self.session, self.cluster, row, at)
            row.state, row.backend_ref, row.started_at = "pending", "", None
            row.restarts += 1
            row.reason_code, row.reason = "preempted", f"preempted by job {preemption.by_job}"
        for start in result.starts:
            self._start(self.rows[start.job.id], start.placement, start.borrowing, at)
        started = {s.job.id for s in result.starts}
        examined = set()
        for job_id, reason in result.pending:
            examined.add(job_id)
            self._set_reason(self.rows[job_id], reason)
        if result.others is not None:
            for job_id in self._admitted:
                if job_id not in started and job_id not in examined:
                    self._set_reason(self.rows[job_id], result.others)
        self.session.flush()

    # -- helpers ---------------------------------------------------------------------------------
    def _admit(
        self, projects: dict[int, str], awards: dict[int, list[AwardRow]], at: datetime
    ) -> list[PendingJob]:
        query = select(JobRow).where(JobRow.state == "pending").order_by(JobRow.submitted_at, JobRow.id)
        pending = []
        for row in self.session.scalars(query):
            self.rows[row.id] = row
            models = frozenset(str(m) for m in row.accepted_models or ())
            award, code, detail = active_award(awards.get(row.project_id, []), at, models)
            if award is None:
                if (row.reason_code, row.reason) != (code, detail):
                    row.reason_code, row.reason, row.estimated_start_at = code, detail, None
                continue
            self._admitted[row.id] = _Admitted(row, award.id)
            job = job_of(row, projects[row.project_id], award.model)
            pending.append(
                PendingJob(
                    even_gang(job, self.cluster) if self.even_gangs else job,
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
            job = job_of(row, projects[row.project_id])
            started_s = to_s(row.started_at) if row.started_at else 0.0
            running[row.id] = RunningJob(job, placement, started_s, row.attained_gpu_s, row.borrowing)
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

    def _start(self, row: JobRow, placement: Placement, borrowing: bool, at: datetime) -> None:
        for node, gpus in placement.node_gpus:
            name = self.cluster.nodes[node].name
            for gpu in gpus:
                self.session.add(AllocationRow(job_id=row.id, node_index=node, node_name=name, gpu_index=gpu))
        row.state, row.started_at, row.borrowing = "running", at, borrowing
        row.award_id = self._admitted[row.id].award_id
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
