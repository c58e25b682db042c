"""The database as the live engine's ``SchedulerState``: each transaction is one session.

The engine reaches the database only through these methods (``engine/ports.py``). Every write to a
job takes the row with ``claim_job`` on the state the caller expects (running this ``pending:``
reference, say), so a row the API changed in between is left as it is; the engine renews its lease in
the same transaction (``hold_lease``) just before ``commit``, so a scheduler that lost the lease
stores nothing. The database's own errors become the port's: a write it refuses
(``IntegrityError``) is a ``CycleConflictError``, a database busy or gone for a moment
(``OperationalError``) a ``StateUnavailableError``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import select
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
from gpucommons.store.jobs import JobRow, claim_job, release
from gpucommons.store.state_store import LiveStore


class DatabaseTransaction:
    """A ``SchedulerTransaction`` over one session."""

    def __init__(self, session: Session, cluster: Cluster) -> None:
        self.session = session
        self.cluster = cluster

    # -- the lease ---------------------------------------------------------------------------------
    def acquire_lease(self, holder: str, ttl_s: float) -> Lease | None:
        return lease.acquire_lease(self.session, holder, ttl_s)

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
        return LiveStore(self.session, self.cluster, unavailable_nodes, usage_half_life_s, held_gpus)

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
        self.session.flush()

    def unplace(self, job_id: int, intent: str, why: str) -> None:
        row = self._claim_start(job_id, intent)
        if row is None:
            return
        release(self.session, job_id)
        row.state, row.backend_ref, row.started_at = "pending", "", None
        row.reason_code, row.reason = "node-unavailable", why[:500]
        self.session.flush()

    def launch_failed(self, job_id: int, intent: str, at_s: float, error: str, retry: LaunchRetry) -> None:
        row = self._claim_start(job_id, intent)
        if row is not None:
            launch_failed(self.session, row, to_dt(at_s), error, retry)

    def record_launch(self, job_id: int, intent: str, backend: str, ref: str) -> bool | None:
        row = self._claim_start(job_id, intent)
        if row is None:
            return None
        row.backend, row.backend_ref, row.launch_attempts = backend, ref, 0
        self.session.flush()
        return row.cancel_requested_at is not None

    # -- the transaction ---------------------------------------------------------------------------
    def commit(self) -> None:
        try:
            self.session.commit()
        except IntegrityError as exc:
            self.session.rollback()
            raise CycleConflictError(f"the database refused the writes: {exc.orig}") from exc

    def rollback(self) -> None:
        self.session.rollback()


class DatabaseSchedulerState:
    """The ``SchedulerState`` of the live service: a transaction per session of ``sessions``."""

    def __init__(self, sessions: sessionmaker[Session], cluster: Cluster) -> None:
        self.sessions = sessions
        self.cluster = cluster

    @contextmanager
    def transaction(self) -> Iterator[DatabaseTransaction]:
        try:
            with self.sessions() as session:
                yield DatabaseTransaction(session, self.cluster)
        except OperationalError as exc:
            raise StateUnavailableError(f"database unavailable: {exc.orig}") from exc
