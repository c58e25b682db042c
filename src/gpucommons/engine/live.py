"""The live scheduler loop: lease, backend events, then the very same ``run_cycle`` as the simulator.

One ``step()``:
1. take or renew the database lease (only one scheduler acts at a time; ``store/lease.py``). A new
   holding (the first step, or the lease was lost and taken again) re-adopts: the jobs the database
   records as running are handed to ``Backend.adopt``, so after a restart nothing starts twice and
   vanished jobs are requeued (up to ``max_lost_requeues`` times) or marked lost;
2. reconcile: ``adopt`` again whenever a running job's reference is still ``pending:`` (a launch whose
   outcome was unknown, or not recorded), then apply the backend's events (ends are metered and
   charged to the award) and commit; then forward cancel requests. A job the backend put back in its
   own queue (``requeued``) is requeued here and its backend copy cancelled, because gpucommons
   re-places it itself; a job the backend runs that no gpucommons job owns (``unknown``) is logged and
   counted, and stopped only where the backend says so (``Backend.stops_unknown``: the local backend
   always, Slurm with ``unknown_jobs = "cancel"``); otherwise the GPUs it holds are taken out of the
   snapshot (``HoldsForeignGpus``). A backend that keeps its reports durable (``AcknowledgesEvents``)
   is told once they are committed, and reports again on the next ``adopt`` what was not;
3. ``run_cycle(LiveStore, launch queue, policy, now)`` over the capacity minus the nodes the backend
   reports unavailable and those an operator drained (design note 0008), and commit: the decisions
   are durable before any process exists (a started job's reference is ``pending:<launch id>`` until
   launched). A decision about a job the API changed
   since the snapshot is not recorded (``LiveStore``). A cycle store that knows nothing it reads
   changed since the last decided cycle (``KnowsChanges``) lets the step skip the cycle: it would
   decide nothing new (design note 0013);
4. apply, in the Kueue manner: stop preempted jobs (with their grace period where the backend
   ``StopsGracefully``, capped by ``max_grace_s``), then launch each recorded start on its own, and
   record its reference in its own transaction. A launch that fails puts only that job back in the
   queue, after a backoff (``LaunchRetry``), and fails it after ``max_attempts``; a start whose node
   was drained since the decision goes back to the queue unlaunched; an uncertain one
   (``LaunchUncertainError``) stays ``pending:`` for step 2 to resolve; a job asked to cancel while its
   launch was on the way is cancelled as soon as its reference is known. A launch whose GPUs a
   stopping run still holds (``LaunchDeferredError``) keeps its recorded start and is tried again at
   every later step, so a grace period never blocks the step. Each launch gets ``GPUC_RESTART_COUNT``
   and its run's own secret (``GPUC_JOB_TOKEN``) for reporting checkpoints. The loop steps again when
   a stopping run's grace period ends, so its kill is not left for the next interval.

Every transaction that writes is fenced: it renews the lease ``WHERE holder = <us> AND epoch = <ours>``
before it commits, and the lease is renewed, for ``lease_ttl_s`` plus the backend's longest call (by
the database's clock), before every backend call; a scheduler whose lease was taken over rolls back
and stops before any further launch. A step that fails anywhere makes the next one re-adopt.

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
from typing import Protocol, TypeVar, runtime_checkable

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job, Placement
from gpucommons.engine.cycle import run_cycle
from gpucommons.engine.ports import (
    DEFAULT_MAX_GRACE_S,
    JOB_TOKEN_ENV,
    PENDING_REF_PREFIX,
    RESTART_COUNT_ENV,
    AcknowledgesEvents,
    Backend,
    BackendEvent,
    CycleConflictError,
    HoldsForeignGpus,
    LaunchDeferredError,
    LaunchRetry,
    LaunchSpec,
    LaunchUncertainError,
    Lease,
    LeaseLostError,
    NodeUnavailableError,
    RecordedStart,
    SchedulerState,
    SchedulerTransaction,
    StateUnavailableError,
    StopsGracefully,
    max_call_s,
    new_holder,
)
from gpucommons.errors import GpucError
from gpucommons.policy.constraints import Commons
from gpucommons.policy.protocols import PolicyConfig

log = logging.getLogger(__name__)
T = TypeVar("T")


def live_commons(backend: Backend) -> Commons:
    """The commons' rules in the live service: awards always (a job runs only on what an award pays
    for), residency and power always, even gangs where the backend needs them, and victims chosen by
    the work they would lose since their last reported checkpoint (design note 0016)."""
    return Commons(awards=True, even_gangs=backend.even_gangs, checkpoint_aware=True)


def job_dir(logs_dir: Path, job_id: int) -> Path:
    """Where a job's ``stdout.log`` and ``stderr.log`` live (and, on Slurm, where it runs unless it
    named a workdir; the local backend runs it in a private directory instead)."""
    return logs_dir / str(job_id)


@runtime_checkable
class KnowsChanges(Protocol):
    """Optional capability of a ``CycleStore``: whether a cycle at ``now`` would see exactly what the
    last cycle decided on it saw, so that running it would decide nothing new."""

    def unchanged(self, now: float) -> bool: ...


@dataclass(frozen=True)
class EngineOptions:
    logs_dir: Path
    holder: str = field(default_factory=new_holder)
    lease_ttl_s: float = 15.0
    max_lost_requeues: int = 3
    usage_half_life_s: float = 7 * 86_400.0
    launch_retry: LaunchRetry = field(default_factory=LaunchRetry)
    max_grace_s: float = DEFAULT_MAX_GRACE_S  # the cap on a preempted run's grace period


@dataclass
class StepReport:
    held_lease: bool = False
    lost_lease: bool = False  # the lease was lost during the step: it stopped acting
    events: int = 0
    started: int = 0  # launches that went through
    preempted: int = 0
    skipped: int = 0  # starts decided on a job the API changed since the snapshot: not recorded
    launch_failures: int = 0
    deferred: int = 0  # launches whose GPUs a stopping run still holds: tried again at a later step
    cycle_skipped: bool = False  # nothing the cycle reads changed since the last one: not run


@dataclass(frozen=True)
class _Launch:
    """A recorded start to launch: the job, its GPUs, its ``pending:`` reference and its run's secret."""

    job_id: int
    placement: Placement
    intent: str
    token: str


@dataclass
class _LaunchQueue:
    """The ``Executor`` handed to ``run_cycle``: it only queues, so launches happen after the commit."""

    starts: list[tuple[Job, Placement]] = field(default_factory=list)
    preempts: list[int] = field(default_factory=list)

    def start(self, job: Job, placement: Placement, now: float) -> None:
        self.starts.append((job, placement))

    def preempt(self, job_id: int, now: float) -> None:
        self.preempts.append(job_id)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


class LiveEngine:
    def __init__(
        self,
        state: SchedulerState,
        backend: Backend,
        cluster: Cluster,
        policy: PolicyConfig,
        options: EngineOptions,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.backend = backend
        self.cluster = cluster
        self.policy = policy
        self.options = options
        self.clock = clock
        self.wake = threading.Event()
        self._adopted = False
        self._lease: Lease | None = None
        self._cancel_sent: set[tuple[int, str]] = set()
        # Backend stops that failed, retried at the next step: (job, reference) -> the preemption's
        # grace period (``None``: a cancel).
        self._unsent_stops: dict[tuple[int, str], float | None] = {}
        # Recorded starts whose GPUs a stopping run still held at their launch (``LaunchDeferredError``):
        # launched again at each step, as decided, until they go through or change.
        self._deferred: dict[int, _Launch] = {}
        self.event_counts: Counter[str] = Counter()
        self.unavailable_nodes: frozenset[str] = frozenset()
        self.site_power_w: dict[str, float] = {}

    # -- the step ----------------------------------------------------------------------------------
    def step(self) -> StepReport:
        report = StepReport()
        now = self.clock()
        if not self._take_lease():
            self._adopted = False
            self.site_power_w = {}  # another scheduler acts: its figures, not ours
            return report
        report.held_lease = True
        try:
            self._reconcile(report)
            self._note_unavailable(frozenset(self._call(self.backend.unavailable_nodes)))
            waiting = sorted(self._deferred)  # deferred at earlier steps: this step's only wait
            self._cycle(report, now)
            self._launch_deferred(report, waiting)
        except LeaseLostError as exc:
            log.warning("%s: stopping before any further launch", exc)
            self._lease, self._adopted, self.site_power_w = None, False, {}
            self._deferred = {}  # the next holder resolves them through their pending: references
            report.lost_lease = True
        except BaseException:
            self._adopted = False  # what the backend reported may not be recorded: ask it again
            raise
        return report

    @property
    def lease(self) -> Lease | None:
        """The lease this engine holds (holder and epoch), as of its last step."""
        return self._lease

    def _lease_ttl_s(self) -> float:
        return self.options.lease_ttl_s + max_call_s(self.backend)

    def _take_lease(self) -> bool:
        with self.state.transaction() as tx:
            lease = tx.acquire_lease(self.options.holder, self._lease_ttl_s())
            tx.commit()
        if lease is None:
            self._lease, self._deferred = None, {}
            return False
        if self._lease is None or lease.epoch != self._lease.epoch:
            self._adopted = False  # a new holding: another scheduler may have acted in between
            self._deferred = {}
        self._lease = lease
        return True

    def _fence(self, tx: SchedulerTransaction) -> None:
        """Renew the lease in ``tx``, or raise ``LeaseLostError``: call it last, before committing the
        writes it guards."""
        if self._lease is None:
            raise LeaseLostError("this scheduler holds no lease")
        tx.hold_lease(self._lease, self._lease_ttl_s())

    def _fenced(self, write: Callable[[SchedulerTransaction], T]) -> T:
        """One write in a transaction of its own, committed only under this scheduler's lease."""
        with self.state.transaction() as tx:
            result = write(tx)
            self._fence(tx)
            tx.commit()
        return result

    def _call(self, operation: Callable[[], T]) -> T:
        """A backend call under a lease renewed to outlast it."""
        self._fenced(lambda tx: None)
        return operation()

    # -- step 2: reconcile with the backend ----------------------------------------------------------
    def _reconcile(self, report: StepReport) -> None:
        with self.state.transaction() as tx:
            running = tx.running_jobs()
        # A deferred launch is known not to have happened: adopting it would report it never launched.
        running = [(job_id, ref) for job_id, ref in running if job_id not in self._deferred]
        events: list[BackendEvent] = []
        unresolved = any(not ref or ref.startswith(PENDING_REF_PREFIX) for _, ref in running)
        if not self._adopted or unresolved:
            events.extend(self._call(lambda: self.backend.adopt(running)))
            self._adopted = True
        events.extend(self._call(self.backend.poll))
        cancels: list[tuple[int, str]] = []
        report.events += self._fenced(lambda tx: self._apply(tx, events, cancels))
        if isinstance(self.backend, AcknowledgesEvents):
            self.backend.acknowledge(events)  # recorded: the backend may forget them
        for job_id, ref in cancels:
            self._cancel(job_id, ref)
        self._forward_cancels()

    def _apply(
        self, tx: SchedulerTransaction, events: list[BackendEvent], cancels: list[tuple[int, str]]
    ) -> int:
        for event in events:
            self.event_counts[event.kind] += 1
            if event.kind == "unknown":
                if self._unknown(event):
                    cancels.append((event.job_id, event.backend_ref))
                continue
            tx.apply_event(event, self.options.max_lost_requeues, self.options.launch_retry)
            if event.kind == "requeued" and event.backend_ref:
                # the job is back in gpucommons' queue; the copy waiting in the backend's queue must not
                # run as well (its cancellation event belongs to an old segment and changes nothing)
                cancels.append((event.job_id, event.backend_ref))
        return len(events)

    def _unknown(self, event: BackendEvent) -> bool:
        """Log a backend job no gpucommons job owns; whether to stop it."""
        if self.backend.stops_unknown:
            log.warning(
                "stopping a %s job no job owns: %s (%s)", self.backend.name, event.backend_ref, event.detail
            )
            return True
        log.warning(
            "%s job %s is named like a gpucommons job but no job owns it; left running for an operator "
            "to resolve, and the GPUs it holds are kept out of scheduling: %s",
            self.backend.name,
            event.backend_ref,
            event.detail,
        )
        return False

    def _note_unavailable(self, nodes: frozenset[str]) -> None:
        """Remember the backend's unavailable nodes for this cycle, logging when the set changes."""
        if nodes != self.unavailable_nodes:
            log.warning("unavailable nodes now: %s", ", ".join(sorted(nodes)) or "none")
        self.unavailable_nodes = nodes

    def _forward_cancels(self) -> None:
        with self.state.transaction() as tx:
            asked = tx.running_jobs(cancel_requested=True)
        self._cancel_sent &= set(asked)  # forget jobs that stopped
        for key in asked:
            unsent = key not in self._cancel_sent and not key[1].startswith(PENDING_REF_PREFIX)
            if unsent and key[1] and self._cancel(*key):
                self._cancel_sent.add(key)
        for key, grace_s in sorted(self._unsent_stops.items()):
            del self._unsent_stops[key]
            self._cancel(*key, grace_s=grace_s)

    def _cancel(self, job_id: int, backend_ref: str, *, grace_s: float | None = None) -> bool:
        """Ask the backend to stop a job: a preemption (``grace_s`` given) with that grace period where
        the backend can (``StopsGracefully``), else a cancel with the backend's own. One that fails
        is tried again at the next step."""
        backend = self.backend
        try:
            if grace_s is not None and isinstance(backend, StopsGracefully):
                self._call(lambda: backend.preempt(job_id, backend_ref, grace_s))
            else:
                self._call(lambda: backend.cancel(job_id, backend_ref))
        except LeaseLostError:
            raise
        except Exception as exc:
            log.warning("stop of job %d (%s) failed, will retry: %s", job_id, backend_ref, _one_line(exc))
            self._unsent_stops[(job_id, backend_ref)] = grace_s
            return False
        return True

    # -- step 3: decide ----------------------------------------------------------------------------
    def _cycle(self, report: StepReport, now: float) -> None:
        held = self.backend.held_gpus() if isinstance(self.backend, HoldsForeignGpus) else {}
        with self.state.transaction() as tx:
            unavailable = set(self.unavailable_nodes | tx.drained_nodes())
            store = tx.cycle_store(unavailable, self.options.usage_half_life_s, held)
            if isinstance(store, KnowsChanges) and store.unchanged(now):
                report.cycle_skipped = True
                return
            queue = _LaunchQueue()
            try:
                run_cycle(store, queue, self.policy, now, mix_from_queue=True)
                self._fence(tx)
                tx.commit()
            except CycleConflictError as exc:  # changed under us: decide again next step
                tx.rollback()
                log.warning("scheduling cycle rolled back: %s", exc)
                return
            draw = store.site_power_w()
            if draw is not None:
                self.site_power_w = draw
            recorded = store.recorded_starts()
            starts = [
                _Launch(job.id, placement, recorded[job.id], store.run_token(job.id))
                for job, placement in queue.starts
                if job.id in recorded
            ]
            cap_s = self.options.max_grace_s
            preempted = [
                (job_id, store.preempted_ref(job_id), min(store.preempted_grace_s(job_id), cap_s))
                for job_id in queue.preempts
            ]
        report.skipped = len(queue.starts) - len(starts)
        report.preempted = len(preempted)
        for job_id, ref, grace_s in preempted:
            self._cancel(job_id, ref, grace_s=max(0.0, grace_s))
        for launch in starts:
            self._launch(launch, report)

    def _launch_deferred(self, report: StepReport, job_ids: list[int]) -> None:
        """Try again the launches a stopping run held up at an earlier step: each as decided, unless
        its job changed. After the cycle, as every launch: a run's start is reported (and its segment
        moved to it) by the next step's poll, before any cycle could preempt it."""
        for launch in [self._deferred.pop(job_id) for job_id in job_ids if job_id in self._deferred]:
            self._launch(launch, report)

    def _launch(self, launch: _Launch, report: StepReport) -> None:
        outcome = self._apply_start(launch)
        if outcome is None:
            self._deferred[launch.job_id] = launch
            report.deferred += 1
        elif outcome:
            report.started += 1
        else:
            report.launch_failures += 1

    # -- step 4: apply -----------------------------------------------------------------------------
    def _apply_start(self, launch: _Launch) -> bool | None:
        """Launch one recorded start; whether it was launched (or may have been), ``None`` when it
        must wait for a stopping run to leave its GPUs (deferred: nothing ran)."""
        job_id, placement, intent = launch.job_id, launch.placement, launch.intent
        names = {self.cluster.nodes[node].name for node in placement.nodes}
        with self.state.transaction() as tx:
            start = tx.recorded_start(job_id, intent)
            if start is None:
                return False
            drained = sorted(tx.drained_nodes() & names)
            if start.cancel_requested:  # asked to cancel since the decision: never launched
                tx.cancel_unlaunched(job_id, intent, self.clock())
            elif drained:  # drained since the decision: back to the queue, placed elsewhere next cycle
                tx.unplace(job_id, intent, f"node {', '.join(drained)} was drained before the launch")
            self._fence(tx)  # the launch below cannot outlive this renewal
            tx.commit()
        if start.cancel_requested or drained:
            return False
        spec = self._spec(start, placement, launch.token)
        try:
            ref = self.backend.launch(spec)
        except LaunchDeferredError as exc:
            log.info("launch of job %d deferred: %s", job_id, exc)
            return None
        except LaunchUncertainError as exc:
            log.warning("launch of job %d uncertain, resolving it at the next step: %s", job_id, exc)
            return True
        except NodeUnavailableError as exc:
            log.info("job %d back to the queue: %s", job_id, exc)
            self._unplace(job_id, intent, _one_line(exc))
            return False
        except Exception as exc:
            if isinstance(exc, OSError | GpucError):
                log.warning("launch of job %d failed: %s", job_id, _one_line(exc))
            else:
                log.exception("launch of job %d failed", job_id)
            self._launch_failed(job_id, intent, _one_line(exc))
            return False
        self._record_launch(job_id, intent, ref)
        return True

    def _unplace(self, job_id: int, intent: str, why: str) -> None:
        self._fenced(lambda tx: tx.unplace(job_id, intent, why))

    def _launch_failed(self, job_id: int, intent: str, error: str) -> None:
        at_s, retry = self.clock(), self.options.launch_retry
        self._fenced(lambda tx: tx.launch_failed(job_id, intent, at_s, error, retry))

    def _record_launch(self, job_id: int, intent: str, ref: str) -> None:
        with self.state.transaction() as tx:
            self._fence(tx)  # lost: the next holder adopts the launch through its pending: reference
            cancel = tx.record_launch(job_id, intent, self.backend.name, ref)
            tx.commit()
        if cancel is None:  # nothing records this launch any more: it must not run unseen
            log.warning("job %d changed while it was launched; stopping the launched copy %s", job_id, ref)
            self._cancel(job_id, ref)
        elif cancel and self._cancel(job_id, ref):  # the cancel came while the launch was on its way
            self._cancel_sent.add((job_id, ref))

    def _spec(self, start: RecordedStart, placement: Placement, token: str) -> LaunchSpec:
        where = job_dir(self.options.logs_dir, start.job_id)
        workdir = Path(start.workdir) if start.workdir and Path(start.workdir).is_dir() else where
        return LaunchSpec(
            job_id=start.job_id,
            command=start.command,
            placement=placement,
            node_names=tuple(self.cluster.nodes[n].name for n in placement.nodes),
            gpu_model=self.cluster.nodes[placement.nodes[0]].model,
            time_limit_s=start.time_limit_s,
            workdir=workdir,
            stdout_path=where / "stdout.log",
            stderr_path=where / "stderr.log",
            env={
                "GPUC_LAUNCH_ID": start.launch_id,
                RESTART_COUNT_ENV: str(start.restarts),  # with the same directory, to resume from
                **({JOB_TOKEN_ENV: token} if token else {}),
                **(start.array.environment() if start.array else {}),
            },
            account=str(start.project_id),
        )

    # -- the loop ----------------------------------------------------------------------------------
    def run(self, stop: threading.Event, interval_s: float) -> None:
        """Step every ``interval_s`` seconds (sooner when ``wake`` is set) until ``stop`` is set."""
        while not stop.is_set():
            try:
                self.step()
            except StateUnavailableError as exc:  # database busy or gone for a moment: try again
                log.warning("scheduler step failed: %s", exc)
            except Exception:
                log.exception("scheduler step failed")
            self.wake.wait(self._wait_s(interval_s))
            self.wake.clear()
        self.shutdown()

    def _wait_s(self, interval_s: float) -> float:
        """Until the next step: the interval, or less when a stopping run's grace period ends sooner
        (its kill comes with that step's poll, so no run outlives its grace period by more than a step)."""
        backend = self.backend
        deadline_s = backend.next_deadline_s() if isinstance(backend, StopsGracefully) else None
        if deadline_s is None:
            return interval_s
        return max(0.0, min(interval_s, deadline_s - self.clock()))

    def shutdown(self) -> None:
        """Give the lease back; running jobs keep running and are adopted by the next scheduler."""
        with self.state.transaction() as tx:
            tx.release_lease(self.options.holder)
            tx.commit()
        self._lease = None
