"""``LiveStore``: the database-backed ``StateStore`` the live engine hands to ``run_cycle``.

It mirrors the simulator's ``InMemoryStore``: ``snapshot(now)`` builds the policy's view and
``record(result, now)`` makes the decisions durable in the caller's transaction. The snapshot carries
the commons' inputs — every active award with its guarantee (after reclaims), model, budget and spend,
the sovereign projects, the running jobs' awards, the concurrency limits of job arrays with a
pending task, and the reservations still to end (``store/reservations.py``) — so the policy core's
stages (award, residency, array limit, quota, power, reservations; design notes 0006, 0011 and 0016)
decide exactly as they do in a replay. Jobs the award stage refuses keep the reason it gives
(``no-award``, ``budget``, ``award-model``); a start records the award the stage charged it to.

The jobs come from a ``CycleMemory`` (design note 0013): the view of the active jobs the engine keeps
between cycles, re-read only where the database stamped a change, with each project's decayed usage
kept as running sums. A store built without one reads everything (tests, tools). Small tables
(projects, awards, drains) are read whole every cycle. ``unchanged(now)`` says whether the cycle
would see exactly what the last decided one saw, so the engine may skip it.

The API may write a job between the snapshot and ``record`` (a cancel), so ``record`` writes no row
blindly: a start claims its job only if it is still pending at the version the snapshot read and no
cancel was asked for, else it is skipped (``started`` lists the starts that were recorded; only those
may be launched); a preemption claims its job only if it still runs the same segment (a cancel asked
meanwhile makes it end ``cancelled`` instead of going back to the queue); reasons are written only to
jobs still pending, and only where they change. Jobs asked to cancel, and jobs waiting out a launch
backoff (``retry_at``), are not in the snapshot.

Each start recorded (with the ``node:gpu`` names it holds) and each preemption (by which job, why) is
also an event of the job's history, all of a cycle's in one ``INSERT`` (``store/job_events.py``).

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
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Row, Table, any_, bindparam, insert, literal, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gpucommons.domain.award import REFERENCE_HOURS, Award
from gpucommons.domain.cluster import Cluster
from gpucommons.domain.reservation import Reservation
from gpucommons.engine.ports import PENDING_REF_PREFIX, CycleConflictError, grace_period_s
from gpucommons.policy.constraints.draw import SiteDraw
from gpucommons.policy.constraints.power import caps_at
from gpucommons.policy.decisions import CycleResult, PendingReason, Start
from gpucommons.policy.snapshot import RunningJob, Snapshot
from gpucommons.store.arrays import array_limits
from gpucommons.store.awards import AwardRow
from gpucommons.store.base import to_dt, to_s
from gpucommons.store.cycle_memory import CycleInputs, CycleMemory, reservation_phases
from gpucommons.store.job_events import JobEvent, ended_event, event_of, record_events
from gpucommons.store.job_view import ReasonKey
from gpucommons.store.jobs import (
    AllocationRow,
    JobRow,
    claim_job,
    hash_run_token,
    new_run_token,
    release,
)
from gpucommons.store.reservations import active_reservations
from gpucommons.store.tenancy import ProjectRow
from gpucommons.store.usage import end_segment

_JOBS: Table = JobRow.__table__  # type: ignore[assignment]
IDS_PER_QUERY = 500  # ids in one ``IN`` list
# A reason given to this many jobs is written by ``UPDATE ... WHERE id IN``, this many ids at a time;
# fewer, one row at a time by primary key (SQLite would scan the state index for a short ``IN`` list).
REASON_GROUP_MIN = 1_000
REASON_IDS_PER_QUERY = 20_000

_AWARD_COLUMNS = (
    AwardRow.id,
    AwardRow.project_id,
    AwardRow.model,
    AwardRow.unit,
    AwardRow.gpu_hours_budget,
    AwardRow.gpu_hours_used,
    AwardRow.guaranteed_gpus,
    AwardRow.starts_at,
    AwardRow.ends_at,
)


def award_of(row: AwardRow | Row[*tuple[Any, ...]], tenant: str) -> Award:
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
    """A ``StateStore`` over one session (the engine's ``CycleStore``); build one per cycle, on the
    engine's ``memory`` (none: a memory of its own, so everything is read)."""

    def __init__(
        self,
        session: Session,
        cluster: Cluster,
        unavailable_nodes: set[str] | None = None,
        usage_half_life_s: float = 7 * 86_400.0,
        held_gpus: dict[str, int | None] | None = None,
        memory: CycleMemory | None = None,
    ) -> None:
        self.session = session
        self.cluster = cluster
        self.unavailable_nodes = unavailable_nodes or set()
        self.held_gpus = held_gpus or {}
        self.memory = memory or CycleMemory(cluster, usage_half_life_s)
        self.preempted_refs: dict[int, str] = {}
        self.preempted_grace: dict[int, float] = {}  # what each preempted job's grace period asks
        self.run_tokens: dict[int, str] = {}  # each recorded start's run secret (its hash is stored)
        self.started: dict[int, str] = {}  # starts recorded (claimed): their ``pending:`` references
        self.reasons_written: dict[int, ReasonKey] = {}
        self.events: list[JobEvent] = []  # the cycle's starts and preemptions, for the jobs' histories
        self._inputs: CycleInputs | None = None
        self._read_s: float | None = None
        self._projects: tuple[tuple[int, str, bool], ...] = ()  # id, name, sovereign
        self._tenants: dict[int, str] = {}
        self._awards: dict[str, tuple[Award, ...]] = {}
        self._limits: dict[int, int] = {}
        self._reservations: tuple[Reservation, ...] = ()
        self._recorded = False
        # Each site's projected draw: built with the snapshot (the power stage starts from it) and kept
        # through ``record``, so after a cycle it is the draw of what runs (``/metrics``).
        self.draw: SiteDraw | None = None

    # -- StateStore ------------------------------------------------------------------------------
    def snapshot(self, now: float) -> Snapshot:
        self._read(now)
        view = self.memory.jobs
        self.draw = view.draw.copy()
        sovereign = frozenset(name for _, name, sovereign in self._projects if sovereign)
        return Snapshot(
            cluster=self.cluster,
            capacity=view.capacity,
            pending=view.queue.items,
            running=view.running,
            tenant_usage_gpu_s=self._decayed_usage(now),
            tenant_running_gpus=dict(view.tenant_gpus),
            running_ends=view.ends,
            pending_by_tenant={tenant: line.items for tenant, line in view.by_tenant.items()},
            running_columns=view.columns,
            awards=self._awards,
            sovereign_tenants=sovereign,
            site_draw=self.draw,
            pending_fractional=0,  # live jobs hold whole GPUs
            classed_jobs=view.classed,
            array_limits=self._limits,
            reservations=self._reservations,
        )

    def record(self, result: CycleResult, now: float) -> None:
        self._recorded = True
        at = to_dt(now)
        try:
            for preemption in result.preemptions:
                self._preempt(preemption.job_id, preemption.by_job, preemption.reason, at)
            self._record_starts(result.starts, at)
            record_events(self.session, self.events)
            self._write_reasons(result, {s.job.id for s in result.starts})
            self.session.flush()
        except IntegrityError as exc:  # e.g. a GPU taken meanwhile: the whole cycle is decided again
            self.memory.reset()  # and on everything read again: the view may have missed it
            raise CycleConflictError(f"the cycle's writes were refused: {exc.orig}") from exc

    # -- CycleStore ------------------------------------------------------------------------------
    def recorded_starts(self) -> dict[int, str]:
        return dict(sorted(self.started.items()))

    def preempted_ref(self, job_id: int) -> str:
        return self.preempted_refs.get(job_id, "")

    def preempted_grace_s(self, job_id: int) -> float:
        return self.preempted_grace.get(job_id, 0.0)

    def run_token(self, job_id: int) -> str:
        return self.run_tokens.get(job_id, "")

    def site_power_w(self) -> dict[str, float] | None:
        return dict(self.draw.site_w) if self.draw is not None else None

    def unchanged(self, now: float) -> bool:
        """Whether a cycle at ``now`` would see what the last decided and committed one saw."""
        self._read(now)
        assert self._inputs is not None
        return self.memory.unchanged(self._inputs, now)

    def committed(self) -> None:
        """The transaction holding this cycle's writes committed: the memory learns what they were."""
        if self._recorded and self._inputs is not None and self._read_s is not None:
            self.memory.jobs.reasons_written(self.reasons_written)
            self.memory.decided(self._inputs, self._read_s)

    # -- reading ---------------------------------------------------------------------------------
    def _read(self, now: float) -> None:
        """Bring the memory up to the database (once per store), and read the small tables whole. A
        read that fails half-way (the database gone for a moment) leaves the memory to read everything
        again: the view and the usage sums must have taken in the same changes."""
        if self._read_s is not None:
            return
        try:
            self._read_all(now)
        except BaseException:
            self.memory.reset()
            raise
        self._read_s = now

    def _read_all(self, now: float) -> None:
        session, memory = self.session, self.memory
        self._projects = tuple(
            (int(i), str(n), bool(s))
            for i, n, s in session.execute(
                select(ProjectRow.id, ProjectRow.name, ProjectRow.sovereign).order_by(ProjectRow.id)
            )
        )
        tenants = self._tenants = {i: name for i, name, _ in self._projects}
        changed = memory.jobs.refresh(session, tenants, now)
        if changed is None or changed:
            memory.jobs_changed()
        if memory.usage.refresh(session, None if changed is None else memory.jobs.serviced, now):
            memory.jobs.rebase_usage(now)  # the running jobs' sums afresh too, as often
        memory.jobs.overlay(self.unavailable_nodes, self.held_gpus)
        awards: defaultdict[str, list[Award]] = defaultdict(list)
        query = select(*_AWARD_COLUMNS).where(AwardRow.status == "active").order_by(AwardRow.id)
        for row in session.execute(query):
            tenant = tenants.get(row.project_id)
            if tenant is not None:  # else a project created since its row was read: the next cycle
                awards[tenant].append(award_of(row, tenant))
        self._awards = {tenant: tuple(group) for tenant, group in awards.items()}
        self._limits = array_limits(session, sorted(memory.jobs.arrays))
        self._reservations = active_reservations(session, tenants, to_dt(now))
        all_awards = tuple(a for group in self._awards.values() for a in group)
        self._inputs = CycleInputs(
            projects=self._projects,
            awards=all_awards,
            active_awards=frozenset(a.id for a in all_awards if a.active_at(now)),
            down_nodes=frozenset(self.unavailable_nodes),
            held_gpus=tuple(sorted(self.held_gpus.items())),
            array_limits=tuple(sorted(self._limits.items())),
            caps_w=tuple(sorted(caps_at(self.cluster, now).items())),
            reservations=reservation_phases(self._reservations, now),
        )

    def _decayed_usage(self, now: float) -> dict[str, float]:
        """Usage decayed by half every half-life, as ``UsageLedger`` computes it: the ended segments'
        and the running jobs', both kept as running sums (``store/decayed_usage.py``,
        ``JobView.running_usage``)."""
        usage: defaultdict[str, float] = defaultdict(float)
        for project_id, value in self.memory.usage.at(now).items():
            tenant = self._tenants.get(project_id)
            if tenant is not None:
                usage[tenant] += value
        for tenant, value in self.memory.jobs.running_usage(now).items():
            usage[tenant] += value
        return dict(usage)

    # -- recording -------------------------------------------------------------------------------
    def _record_starts(self, starts: Sequence[Start], at: datetime) -> None:
        """Claim and start every start's job in one conditional ``UPDATE`` a row (run as one batch):
        only a job still pending, not asked to cancel, at the version the snapshot read is changed
        (as ``claim_job`` takes one), and its version bumped; the others changed since and are
        skipped. Which ones started is read back by their new, unique ``pending:`` references; then
        their allocations are written, in one statement."""
        if not starts:
            return
        jobs = self.memory.jobs.jobs
        refs = {s.job.id: PENDING_REF_PREFIX + uuid.uuid4().hex for s in starts}
        tokens = {s.job.id: new_run_token() for s in starts}
        rows = [
            {
                "job": s.job.id,
                "seen": jobs[s.job.id].row.version,
                "borrows": s.borrowing,
                "award": s.award_id,
                "ref": refs[s.job.id],
                "token": hash_run_token(tokens[s.job.id]),
            }
            for s in starts
        ]
        claim = (
            update(_JOBS)
            .where(
                _JOBS.c.id == bindparam("job"),
                _JOBS.c.version == bindparam("seen"),
                _JOBS.c.state == "pending",
                _JOBS.c.cancel_requested_at.is_(None),
            )
            .values(
                version=_JOBS.c.version + 1,
                state="running",
                started_at=at,
                borrowing=bindparam("borrows"),
                award_id=bindparam("award"),
                backend_ref=bindparam("ref"),
                reason_code="",
                reason="",
                estimated_start_at=None,
                retry_at=None,
                run_token_sha256=bindparam("token"),
            )
        )
        self.session.execute(claim, rows)
        claimed: set[int] = set()
        ids = sorted(refs)
        for i in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[i : i + IDS_PER_QUERY]
            query = select(_JOBS.c.id, _JOBS.c.backend_ref).where(_JOBS.c.id.in_(chunk))
            claimed.update(job_id for job_id, ref in self.session.execute(query) if ref == refs[job_id])
        allocations: list[dict[str, Any]] = []
        for start in starts:
            job_id = start.job.id
            if job_id not in claimed:
                continue  # cancelled (or otherwise changed) since the snapshot: not started
            self.started[job_id] = refs[job_id]
            self.run_tokens[job_id] = tokens[job_id]
            held: list[str] = []
            for node, gpus in start.placement.node_gpus:
                name = self.cluster.nodes[node].name
                allocations.extend(
                    {"job_id": job_id, "node_index": node, "node_name": name, "gpu_index": gpu}
                    for gpu in gpus
                )
                held.extend(f"{name}:{gpu}" for gpu in gpus)
            run = jobs[job_id].row.restarts + 1
            self.events.append(JobEvent(job_id, "started", at, run, gpus=tuple(held)))
            if self.draw is not None:
                self.draw.add(start.placement)
        if allocations:
            self.session.execute(insert(AllocationRow), allocations)

    def _preempt(self, job_id: int, by_job: int | None, why: str, at: datetime) -> None:
        snapshot_ref = self.memory.jobs.jobs[job_id].row.backend_ref
        row = claim_job(self.session, job_id, JobRow.state == "running", JobRow.backend_ref == snapshot_ref)
        if row is None:
            raise CycleConflictError(f"job {job_id} changed since the snapshot; deciding again")
        running: RunningJob = self.memory.jobs.running[job_id]
        if self.draw is not None:
            self.draw.remove(running.placement)
        self.preempted_refs[row.id] = row.backend_ref
        self.preempted_grace[row.id] = grace_period_s(row.grace_s, row.priority_class, math.inf)
        row.signalled_at = at  # the stop signal follows the commit; the segment is charged to here
        by = by_job or None
        self.events.append(event_of(row, "preempted", at, why, by_job_id=by, backend_ref=row.backend_ref))
        if row.backend_ref.startswith(PENDING_REF_PREFIX):  # decided, never launched (its launch
            release(self.session, row.id)  # waited for a stopping run): nothing ran to charge
        else:
            end_segment(self.session, self.cluster, row, at)
        row.backend_ref, row.started_at = "", None
        if row.cancel_requested_at is not None:  # asked to stop meanwhile: it stops for good
            row.state, row.ended_at = "cancelled", at
            row.reason_code, row.reason = "cancelled", "cancelled (it was being preempted)"
            self.events.append(ended_event(row, at))
            return
        row.state = "pending"
        row.restarts += 1
        row.reason_code, row.reason = "preempted", (f"preempted by job {by_job}" if by_job else why)

    def _write_reasons(self, result: CycleResult, started: set[int]) -> None:
        """Write the reasons that changed, only to jobs still pending: a job the API cancelled since
        the snapshot keeps its state and reason. ``result.others`` goes to every queued job the cycle
        did not examine, found by the memory's groups of jobs by stored reason, so a cycle writes (and
        looks at) only the jobs whose reason changes, row by row, or, for a reason given to many (a new
        reason for the unexamined rest of a long queue), by ``UPDATE ... WHERE id IN``. Reasons are
        advisory and bump no version."""
        view = self.memory.jobs
        changes: dict[int, ReasonKey] = {}
        explicit: set[int] = set()
        for job_id, reason in result.pending:
            explicit.add(job_id)
            key = _key(reason)
            if view.stored_reason(job_id) != key:
                changes[job_id] = key
        if result.others is not None:
            others = _key(result.others)
            for job_id in view.queued_ids_not_at(others):
                if job_id not in explicit and job_id not in started:
                    changes[job_id] = others
        self.reasons_written = changes
        groups: defaultdict[ReasonKey, list[int]] = defaultdict(list)
        for job_id, key in sorted(changes.items()):
            groups[key].append(job_id)
        big = {key: ids for key, ids in groups.items() if len(ids) >= REASON_GROUP_MIN}
        single = [
            {"job": job_id, "code": code, "detail": detail, "eta": eta}
            for (code, detail, eta), ids in groups.items()
            if (code, detail, eta) not in big
            for job_id in ids
        ]
        if single:
            each = (
                update(_JOBS)
                .where(_JOBS.c.id == bindparam("job"), _JOBS.c.state == "pending")
                .values(
                    reason_code=bindparam("code"),
                    reason=bindparam("detail"),
                    estimated_start_at=bindparam("eta"),
                )
            )
            self.session.execute(each, single)
        postgresql = self.session.get_bind().dialect.name == "postgresql"
        for (code, detail, eta), ids in big.items():
            for i in range(0, len(ids), REASON_IDS_PER_QUERY):
                chunk = ids[i : i + REASON_IDS_PER_QUERY]
                # PostgreSQL takes the ids as one array parameter, not thousands of them.
                among = (
                    _JOBS.c.id == any_(literal(chunk, ARRAY(Integer)))
                    if postgresql
                    else _JOBS.c.id.in_(chunk)
                )
                shared = (
                    update(_JOBS)
                    .where(among, _JOBS.c.state == "pending")
                    .values(reason_code=code, reason=detail, estimated_start_at=eta)
                )
                self.session.execute(shared)


def _key(reason: PendingReason) -> ReasonKey:
    estimated = to_dt(reason.estimated_start_s) if reason.estimated_start_s is not None else None
    return (reason.code, reason.detail, estimated)
