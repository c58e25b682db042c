"""``LiveStore``: the database-backed ``StateStore`` the live engine hands to ``run_cycle``.

It mirrors the simulator's ``InMemoryStore``: ``snapshot(now)`` builds the policy's view from rows and
``record(result, now)`` makes the decisions durable in the caller's transaction. The snapshot carries
the commons' inputs — every active award with its guarantee (after reclaims), model, budget and spend,
the sovereign projects, the running jobs' awards, and the concurrency limits of job arrays with a
pending task — so the policy core's stages (award, residency, array limit, quota, power; design notes
0006 and 0011) decide exactly as they do in a replay. Jobs the award stage refuses
keep the reason it gives (``no-award``, ``budget``, ``award-model``); a start records the award the
stage charged it to.

The API may write a job between the snapshot and ``record`` (a cancel), so ``record`` writes no row
blindly: a start claims its job only if it is still pending at the version the snapshot read and no
cancel was asked for, else it is skipped (``started`` lists the starts that were recorded; only those
may be launched); a preemption claims its job only if it still runs the same segment (a cancel asked
meanwhile makes it end ``cancelled`` instead of going back to the queue); reasons are written only to
jobs still pending. Jobs asked to cancel, and jobs waiting out a launch backoff (``retry_at``), are not
in the snapshot.

Started jobs get ``backend_ref = "pending:<launch id>"``: the engine commits that intent before it asks
the backend to launch, so a crash in between can be resolved by the backend (see ``Backend.adopt``).
Nodes the backend reports unavailable are down in the snapshot's capacity, and GPUs held by backend
jobs no gpucommons job owns (``held_gpus``: node name -> GPU count, ``None`` for the whole node) are
taken out of it.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from datetime import datetime

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gpucommons.domain.award import REFERENCE_HOURS, Award
from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job, Placement
from gpucommons.domain.power import PowerModel
from gpucommons.engine.ports import PENDING_REF_PREFIX, CycleConflictError
from gpucommons.policy.capacity import Capacity
from gpucommons.policy.constraints.draw import SiteDraw
from gpucommons.policy.decisions import CycleResult, PendingReason
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot
from gpucommons.store.arrays import array_limits
from gpucommons.store.awards import (
    AwardRow,
)
from gpucommons.store.base import (
    to_dt,
    to_s,
)
from gpucommons.store.jobs import (
    AllocationRow,
    JobRow,
    claim_job,
)
from gpucommons.store.tenancy import (
    ProjectRow,
)
from gpucommons.store.usage import (
    UsageRow,
    end_segment,
)

USAGE_HORIZON_HALF_LIVES = 10  # older segments weigh < 0.1 % and are left out of decayed usage


_JOBS: Table = JobRow.__table__  # type: ignore[assignment]


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
        job_class=row.job_class,
        array_id=row.array_id,
    )


def award_of(row: AwardRow, tenant: str) -> Award:
    """The policy's view of an award row. ``guaranteed_gpus`` already has reclaims taken off. A budget
    in reference GPU-hours pays for every model (an hour anywhere costs its speed there), one in
    device-hours only for its program's model."""
    any_model = row.unit == REFERENCE_HOURS or not row.model
    return Award(
        id=row.id,
        tenant=tenant,
        guaranteed_gpus=row.guaranteed_gpus,
        models=frozenset() if any_model else frozenset([row.model]),
        gpu_hours_budget=row.gpu_hours_budget,
        gpu_hours_used=row.gpu_hours_used,
        starts_s=to_s(row.starts_at),
        ends_s=to_s(row.ends_at),
        unit=row.unit,
    )


class LiveStore:
    """A ``StateStore`` over one session (the engine's ``CycleStore``); build one per cycle (it caches
    that cycle's rows)."""

    def __init__(
        self,
        session: Session,
        cluster: Cluster,
        unavailable_nodes: set[str] | None = None,
        usage_half_life_s: float = 7 * 86_400.0,
        held_gpus: dict[str, int | None] | None = None,
    ) -> None:
        self.session = session
        self.cluster = cluster
        self.unavailable_nodes = unavailable_nodes or set()
        self.usage_half_life_s = usage_half_life_s
        self.held_gpus = held_gpus or {}
        self.rows: dict[int, JobRow] = {}
        self.preempted_refs: dict[int, str] = {}
        self.started: set[int] = set()  # starts recorded (claimed); the others were skipped
        self._versions: dict[int, int] = {}
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
        pending = self._pending(projects, now)
        arrays = sorted({p.job.array_id for p in pending if p.job.array_id is not None})
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
            array_limits=array_limits(self.session, arrays),
        )

    def record(self, result: CycleResult, now: float) -> None:
        at = to_dt(now)
        for preemption in result.preemptions:
            self._preempt(preemption.job_id, preemption.by_job, preemption.reason, at)
        for start in result.starts:
            row = self.rows[start.job.id]
            if not self._claim_start(row):
                continue  # cancelled (or otherwise changed) since the snapshot: not started
            if self.draw is not None:
                self.draw.add(start.placement)
            self._start(row, start.placement, start.borrowing, start.award_id, at)
            self.started.add(row.id)
        started = {s.job.id for s in result.starts}
        reasons: dict[int, PendingReason] = {}
        for job_id, reason in result.pending:
            reasons[job_id] = reason
        if result.others is not None:
            for job_id in self._pending_ids:
                if job_id not in started and job_id not in reasons:
                    reasons[job_id] = result.others
        self._write_reasons(reasons)
        try:
            self.session.flush()
        except IntegrityError as exc:  # e.g. a GPU taken meanwhile: the whole cycle is decided again
            raise CycleConflictError(f"the cycle's writes were refused: {exc.orig}") from exc

    # -- CycleStore ------------------------------------------------------------------------------
    def recorded_starts(self) -> dict[int, str]:
        return {job_id: self.rows[job_id].backend_ref for job_id in sorted(self.started)}

    def preempted_ref(self, job_id: int) -> str:
        return self.preempted_refs.get(job_id, "")

    def site_power_w(self) -> dict[str, float] | None:
        return dict(self.draw.site_w) if self.draw is not None else None

    # -- helpers ---------------------------------------------------------------------------------
    def _pending(self, projects: dict[int, str], now: float) -> list[PendingJob]:
        query = (
            select(JobRow)
            .where(
                JobRow.state == "pending",
                JobRow.cancel_requested_at.is_(None),
                or_(JobRow.retry_at.is_(None), JobRow.retry_at <= to_dt(now)),
            )
            .order_by(JobRow.submitted_at, JobRow.id)
        )
        pending = []
        for row in self.session.scalars(query):
            self.rows[row.id] = row
            self._versions[row.id] = row.version
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
        self._hold_foreign(capacity)
        return running, tenant_gpus, capacity

    def _hold_foreign(self, capacity: Capacity) -> None:
        """Take GPUs that backend jobs no gpucommons job owns hold out of the capacity: ``count`` of the
        node's free GPUs (which ones does not matter, the backend picks the devices), or the whole node."""
        by_name = {n.name: n.index for n in self.cluster.nodes}
        for name, count in sorted(self.held_gpus.items()):
            node = by_name.get(name)
            if node is None:
                continue
            if count is None:
                capacity.set_up(node, False)
                continue
            free = capacity.free_indices(node)
            if free:
                capacity.allocate_indices(node, free[: max(0, count)])

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

    def _claim_start(self, row: JobRow) -> bool:
        """Whether the job is still pending, not asked to cancel, at the version the snapshot read; if
        so it is held for this transaction (``claim_job``)."""
        claimed = claim_job(
            self.session,
            row.id,
            JobRow.version == self._versions[row.id],
            JobRow.state == "pending",
            JobRow.cancel_requested_at.is_(None),
        )
        return claimed is not None

    def _preempt(self, job_id: int, by_job: int | None, why: str, at: datetime) -> None:
        snapshot_ref = self.rows[job_id].backend_ref
        row = claim_job(self.session, job_id, JobRow.state == "running", JobRow.backend_ref == snapshot_ref)
        if row is None:
            raise CycleConflictError(f"job {job_id} changed since the snapshot; deciding again")
        if self.draw is not None:
            self.draw.remove(self._running_jobs[job_id].placement)
        self.preempted_refs[row.id] = row.backend_ref
        end_segment(self.session, self.cluster, row, at)
        row.backend_ref, row.started_at = "", None
        if row.cancel_requested_at is not None:  # asked to stop meanwhile: it stops for good
            row.state, row.ended_at = "cancelled", at
            row.reason_code, row.reason = "cancelled", "cancelled (it was being preempted)"
            return
        row.state = "pending"
        row.restarts += 1
        row.reason_code, row.reason = "preempted", (f"preempted by job {by_job}" if by_job else why)

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
        row.retry_at = None

    def _write_reasons(self, reasons: dict[int, PendingReason]) -> None:
        """Write the reasons that changed, only to jobs still pending: a job the API cancelled since
        the snapshot keeps its state and reason. One statement for all of them; reasons are advisory
        and bump no version."""
        changes = []
        for job_id, reason in reasons.items():
            row = self.rows[job_id]
            estimated = to_dt(reason.estimated_start_s) if reason.estimated_start_s is not None else None
            if (row.reason_code, row.reason, row.estimated_start_at) != (
                reason.code,
                reason.detail,
                estimated,
            ):
                changes.append(
                    {"job": job_id, "code": reason.code, "detail": reason.detail, "eta": estimated}
                )
        if not changes:
            return
        statement = (
            update(_JOBS)
            .where(_JOBS.c.id == bindparam("job"), _JOBS.c.state == "pending")
            .values(
                reason_code=bindparam("code"), reason=bindparam("detail"), estimated_start_at=bindparam("eta")
            )
        )
        self.session.execute(statement, changes)
