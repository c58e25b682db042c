"""The live scheduler loop: lease, backend events, then the very same ``run_cycle`` as the simulator.

One ``step()``:
1. take or renew the database lease (only one scheduler acts at a time); on first taking it, adopt the
   jobs the database records as running, so after a restart nothing starts twice and vanished jobs are
   requeued (up to ``max_lost_requeues`` times) or marked lost;
2. apply the backend's events (ends are metered and charged to the award) and forward cancel requests;
   a job the backend put back in its own queue (``requeued``) is requeued here and its backend copy
   cancelled, because gpucommons re-places it itself; a job the backend runs that no gpucommons job owns
   (``unknown``) is logged and counted, and stopped only by backends that own everything they could
   report (``Backend.stops_unknown``);
3. ``run_cycle(LiveStore, launch queue, policy, now)`` over the capacity minus the nodes the backend
   reports unavailable, and commit: the decisions are durable before any process exists (a started
   job's reference is ``pending:<launch id>`` until launched);
4. carry them out: cancel preempted jobs, launch started ones, record their references, commit. A launch
   the backend refuses fails that job, not the cycle.

``event_counts`` (events by kind), ``unavailable_nodes`` and ``site_power_w`` (each site's projected draw
of the jobs running after the last cycle, by the power stage's formula) are read by ``/metrics``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job, Placement
from gpucommons.engine.cycle import run_cycle
from gpucommons.engine.events import apply_event
from gpucommons.engine.ports import Backend, BackendEvent, LaunchSpec
from gpucommons.errors import GpucError
from gpucommons.policy.constraints import Commons
from gpucommons.policy.protocols import PolicyConfig
from gpucommons.store.jobs import JobRow
from gpucommons.store.lease import acquire_lease, new_holder, release_lease
from gpucommons.store.live import PENDING_REF_PREFIX, LiveStore, to_dt

log = logging.getLogger(__name__)


def live_commons(backend: Backend) -> Commons:
    """The commons' rules in the live service: awards always (a job runs only on what an award pays
    for), residency and power always, even gangs where the backend needs them."""
    return Commons(awards=True, even_gangs=backend.even_gangs)


def job_dir(logs_dir: Path, job_id: int) -> Path:
    """Where a job's ``stdout.log`` and ``stderr.log`` live (and it runs, unless it named a workdir)."""
    return logs_dir / str(job_id)


@dataclass(frozen=True)
class EngineOptions:
    logs_dir: Path
    holder: str = field(default_factory=new_holder)
    lease_ttl_s: float = 15.0
    max_lost_requeues: int = 3
    usage_half_life_s: float = 7 * 86_400.0


@dataclass
class StepReport:
    held_lease: bool = False
    events: int = 0
    started: int = 0
    preempted: int = 0


@dataclass
class _LaunchQueue:
    """The ``Executor`` handed to ``run_cycle``: it only queues, so launches happen after the commit."""

    starts: list[tuple[Job, Placement]] = field(default_factory=list)
    preempts: list[int] = field(default_factory=list)

    def start(self, job: Job, placement: Placement, now: float) -> None:
        self.starts.append((job, placement))

    def preempt(self, job_id: int, now: float) -> None:
        self.preempts.append(job_id)


class LiveEngine:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        backend: Backend,
        cluster: Cluster,
        policy: PolicyConfig,
        options: EngineOptions,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sessions = sessions
        self.backend = backend
        self.cluster = cluster
        self.policy = policy
        self.options = options
        self.clock = clock
        self.wake = threading.Event()
        self._adopted = False
        self._cancel_sent: set[tuple[int, str]] = set()
        self.event_counts: Counter[str] = Counter()
        self.unavailable_nodes: frozenset[str] = frozenset()
        self.site_power_w: dict[str, float] = {}

    def step(self) -> StepReport:
        report = StepReport()
        now = self.clock()
        with self.sessions() as session:
            held = acquire_lease(session, self.options.holder, to_dt(now), self.options.lease_ttl_s)
            session.commit()
        if not held:
            self._adopted = False
            self.site_power_w = {}  # another scheduler acts: its figures, not ours
            return report
        report.held_lease = True
        with self.sessions() as session:
            if not self._adopted:
                running = session.execute(
                    select(JobRow.id, JobRow.backend_ref).where(JobRow.state == "running")
                )
                report.events += self._apply(session, self.backend.adopt([(i, r) for i, r in running]))
                self._adopted = True
            report.events += self._apply(session, self.backend.poll())
            self._forward_cancels(session)
            session.commit()
        self._note_unavailable(frozenset(self.backend.unavailable_nodes()))
        with self.sessions() as session:
            store = LiveStore(
                session,
                self.cluster,
                set(self.unavailable_nodes),
                self.options.usage_half_life_s,
            )
            queue = _LaunchQueue()
            try:
                run_cycle(store, queue, self.policy, now)
                session.commit()
            except IntegrityError as exc:  # another writer changed allocations under us: next cycle
                session.rollback()
                log.warning("scheduling cycle rolled back: %s", exc.orig)
                return report
            if store.draw is not None:
                self.site_power_w = dict(store.draw.site_w)
            for job_id in queue.preempts:
                self.backend.cancel(job_id, store.preempted_refs.get(job_id, ""))
            for job, placement in queue.starts:
                self._launch(session, store.rows[job.id], placement)
            session.commit()
        report.started, report.preempted = len(queue.starts), len(queue.preempts)
        return report

    def _apply(self, session: Session, events: list[BackendEvent]) -> int:
        for event in events:
            self.event_counts[event.kind] += 1
            if event.kind == "unknown":
                self._unknown(event)
                continue
            apply_event(session, self.cluster, event, self.options.max_lost_requeues)
            if event.kind == "requeued" and event.backend_ref:
                # the job is back in gpucommons' queue; the copy waiting in the backend's queue must not
                # run as well (its cancellation event belongs to an old segment and changes nothing)
                self.backend.cancel(event.job_id, event.backend_ref)
        return len(events)

    def _unknown(self, event: BackendEvent) -> None:
        if self.backend.stops_unknown:
            log.warning("stopping a process no job owns: %s (%s)", event.backend_ref, event.detail)
            self.backend.cancel(0, event.backend_ref)
        else:
            log.warning(
                "%s job %s is named like a gpucommons job but no job owns it; left running for an "
                "operator to resolve (its GPUs are invisible to the scheduler): %s",
                self.backend.name,
                event.backend_ref,
                event.detail,
            )

    def _note_unavailable(self, nodes: frozenset[str]) -> None:
        """Remember the backend's unavailable nodes for this cycle, logging when the set changes."""
        if nodes != self.unavailable_nodes:
            log.warning("unavailable nodes now: %s", ", ".join(sorted(nodes)) or "none")
        self.unavailable_nodes = nodes

    def _forward_cancels(self, session: Session) -> None:
        query = select(JobRow).where(JobRow.state == "running", JobRow.cancel_requested_at.is_not(None))
        for row in session.scalars(query):
            key = (row.id, row.backend_ref)
            if key not in self._cancel_sent and not row.backend_ref.startswith(PENDING_REF_PREFIX):
                self.backend.cancel(row.id, row.backend_ref)
                self._cancel_sent.add(key)

    def _launch(self, session: Session, row: JobRow, placement: Placement) -> None:
        where = job_dir(self.options.logs_dir, row.id)
        workdir = Path(row.workdir) if row.workdir and Path(row.workdir).is_dir() else where
        spec = LaunchSpec(
            job_id=row.id,
            command=tuple(str(a) for a in row.command),
            placement=placement,
            node_names=tuple(self.cluster.nodes[n].name for n in placement.nodes),
            gpu_model=self.cluster.nodes[placement.nodes[0]].model,
            time_limit_s=row.time_limit_s,
            workdir=workdir,
            stdout_path=where / "stdout.log",
            stderr_path=where / "stderr.log",
            env={"GPUC_LAUNCH_ID": row.backend_ref.removeprefix(PENDING_REF_PREFIX)},
            account=str(row.project_id),
        )
        row.backend = self.backend.name
        try:
            row.backend_ref = self.backend.launch(spec)
        except (OSError, GpucError) as exc:  # refused by the backend (e.g. sbatch): this job fails
            apply_event(
                session,
                self.cluster,
                BackendEvent(row.id, "failed", self.clock(), row.backend_ref, None, f"launch failed: {exc}"),
                self.options.max_lost_requeues,
            )

    def run(self, stop: threading.Event, interval_s: float) -> None:
        """Step every ``interval_s`` seconds (sooner when ``wake`` is set) until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.step()
            except OperationalError as exc:  # database busy or gone for a moment: try again
                log.warning("scheduler step failed: %s", exc.orig)
            except Exception:
                log.exception("scheduler step failed")
            self.wake.wait(interval_s)
            self.wake.clear()
        self.shutdown()

    def shutdown(self) -> None:
        """Give the lease back; running jobs keep running and are adopted by the next scheduler."""
        with self.sessions() as session:
            release_lease(session, self.options.holder)
            session.commit()
