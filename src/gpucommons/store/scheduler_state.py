"""The database as the live engine's ``SchedulerState``: each transaction is one session.

The engine reaches the database only through these methods (``engine/ports.py``). Every write to a
job takes the row with ``claim_job`` on the state the caller expects (running this ``pending:``
reference, say), so a row the API changed in between is left as it is; the engine renews its lease in
the same transaction (``hold_lease``) just before ``commit``, so a scheduler that lost the lease
stores nothing. The database's own errors become the port's: a write it refuses
(``IntegrityError``) is a ``CycleConflictError``, a database busy or gone for a moment
(``OperationalError``) a ``StateUnavailableError``.

The state keeps one ``CycleMemory`` (the view of the active jobs and the usage sums, design note 0013)
for the cycles of the lease holding it was built under: each cycle store reads only what changed, and
learns what its cycle wrote once the transaction commits. Taking the lease in a new epoch (another
scheduler may have acted in between) forgets it, so the next cycle reads everything again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Table, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gpucommons.domain.cluster import Cluster
from gpucommons.engine.ports import (
    PENDING_REF_PREFIX,
    BackendEvent,
    CycleConflictError,
    LaunchRetry,
    Lease,
    RecordedStart,
    StateUnavailableError,
)
from gpucommons.store import lease, nodes
from gpucommons.store.arrays import array_task_of
from gpucommons.store.backend_events import apply_event, launch_failed
from gpucommons.store.base import to_dt
from gpucommons.store.cycle_memory import CycleMemory
from gpucommons.store.job_events import ended_event, event_of, record_event
from gpucommons.store.jobs import JobRow, claim_job, release
from gpucommons.store.state_store import LiveStore

_JOBS: Table = JobRow.__table__  # type: ignore[assignment]


class DatabaseTransaction:
    """A ``SchedulerTransaction`` over one session."""

    def __init__(self, session: Session, cluster: Cluster, state: DatabaseSchedulerState) -> None:
        self.session = session
        self.cluster = cluster
        self.state = state
        self._stores: list[LiveStore] = []

    # -- the lease ---------------------------------------------------------------------------------
    def acquire_lease(self, holder: str, ttl_s: float) -> Lease | None:
        held = lease.acquire_lease(self.session, holder, ttl_s)
        if held is not None:
            self.state.holding(held.epoch)
        return held

    def hold_lease(self, held: Lease, ttl_s: float) -> None:
        lease.hold_lease(self.session, held, ttl_s)

    def release_lease(self, holder: str) -> None:
        lease.release_lease(self.session, holder)

    # -- reconciling with the backend -------------------------------------------------------------
    def running_jobs(self, *, cancel_requested: bool = False) -> list[tuple[int, str]]:
        query = select(JobRow.id, JobRow.backend_ref).where(JobRow.state == "running")
        if cancel_requested:
            query = query.where(JobRow.cancel_requested_at.is_not(None))
        return [(int(i), str(r)) for i, r in self.session.execute(query)]

    def apply_event(self, event: BackendEvent, max_lost_requeues: int, retry: LaunchRetry) -> bool:
        return apply_event(self.session, self.cluster, event, max_lost_requeues, retry)

    # -- deciding ----------------------------------------------------------------------------------
    def drained_nodes(self) -> frozenset[str]:
        return nodes.drained_nodes(self.session)

    def cycle_store(
        self, unavailable_nodes: set[str], usage_half_life_s: float, held_gpus: dict[str, int | None]
    ) -> LiveStore:
        memory = self.state.memory_for(usage_half_life_s)
        store = LiveStore(self.session, self.cluster, unavailable_nodes, usage_half_life_s, held_gpus, memory)
        self._stores.append(store)
        return store

    # -- launching ---------------------------------------------------------------------------------
    def recorded_start(self, job_id: int, intent: str) -> RecordedStart | None:
        row = self.session.get(JobRow, job_id)
        if row is None or row.state != "running" or row.backend_ref != intent:
            return None
        return RecordedStart(
            job_id=row.id,
            launch_id=intent.removeprefix(PENDING_REF_PREFIX),
            command=tuple(str(a) for a in row.command),
            workdir=row.workdir,
            time_limit_s=row.time_limit_s,
            project_id=row.project_id,
            cancel_requested=row.cancel_requested_at is not None,
            array=array_task_of(self.session, row),
            restarts=row.restarts,
        )

    def _claim_start(self, job_id: int, intent: str) -> JobRow | None:
        return claim_job(self.session, job_id, JobRow.state == "running", JobRow.backend_ref == intent)

    def cancel_unlaunched(self, job_id: int, intent: str, at_s: float) -> None:
        row = self._claim_start(job_id, intent)
        if row is None:
            return
        release(self.session, job_id)  # it never ran: nothing to charge
        row.state, row.ended_at, row.backend_ref, row.started_at = "cancelled", to_dt(at_s), "", None
        row.reason_code, row.reason = "cancelled", "cancelled before it was launched"
        record_event(self.session, ended_event(row, to_dt(at_s)))
        self.session.flush()

    def unplace(self, job_id: int, intent: str, why: str) -> None:
        row = self._claim_start(job_id, intent)
        if row is None:
            return
        release(self.session, job_id)
        decided_at = row.started_at  # the start undone: its event follows that start's
        row.state, row.backend_ref, row.started_at = "pending", "", None
        row.reason_code, row.reason = "node-unavailable", why[:500]
        if decided_at is not None:
            record_event(self.session, event_of(row, "requeued", decided_at, f"not launched: {why}"))
        self.session.flush()

    def launch_failed(self, job_id: int, intent: str, at_s: float, error: str, retry: LaunchRetry) -> None:
        row = self._claim_start(job_id, intent)
        if row is not None:
            launch_failed(self.session, row, to_dt(at_s), error, retry)

    def record_launch(self, job_id: int, intent: str, backend: str, ref: str) -> bool | None:
        """One conditional ``UPDATE ... RETURNING``: the claim (still running this intent; the version
        bumped) and the write at once."""
        launched = self.session.execute(
            update(_JOBS)
            .where(_JOBS.c.id == job_id, _JOBS.c.state == "running", _JOBS.c.backend_ref == intent)
            .values(backend=backend, backend_ref=ref, launch_attempts=0, version=_JOBS.c.version + 1)
            .returning(_JOBS.c.cancel_requested_at)
        ).first()
        return None if launched is None else launched[0] is not None

    # -- the transaction ---------------------------------------------------------------------------
    def commit(self) -> None:
        try:
            self.session.commit()
        except IntegrityError as exc:
            self.session.rollback()
            if self.state.memory is not None:
                self.state.memory.reset()  # the view may have missed what the database refused
            raise CycleConflictError(f"the database refused the writes: {exc.orig}") from exc
        for store in self._stores:
            store.committed()
        self._stores = []

    def rollback(self) -> None:
        self.session.rollback()
        self._stores = []


class DatabaseSchedulerState:
    """The ``SchedulerState`` of the live service: a transaction per session of ``sessions``, and the
    memory its cycles share."""

    def __init__(self, sessions: sessionmaker[Session], cluster: Cluster) -> None:
        self.sessions = sessions
        self.cluster = cluster
        self.memory: CycleMemory | None = None
        self._epoch: int | None = None  # of the lease holding the memory was built under

    def holding(self, epoch: int) -> None:
        """The lease is held in ``epoch``: a new holding forgets the memory."""
        if epoch != self._epoch:
            self.memory, self._epoch = None, epoch

    def memory_for(self, usage_half_life_s: float) -> CycleMemory:
        memory = self.memory
        if memory is None or memory.usage.half_life_s != usage_half_life_s:
            memory = self.memory = CycleMemory(self.cluster, usage_half_life_s)
        return memory

    @contextmanager
    def transaction(self) -> Iterator[DatabaseTransaction]:
        try:
            with self.sessions() as session:
                yield DatabaseTransaction(session, self.cluster, self)
        except OperationalError as exc:
            raise StateUnavailableError(f"database unavailable: {exc.orig}") from exc
