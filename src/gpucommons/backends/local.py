"""``LocalBackend``: jobs run as real processes on this machine, on logical GPUs, each kept away from the
commons and from the other jobs (``backends.isolation``; design note 0007).

Per job the backend keeps ``<state_dir>/<job_id>/`` (mode 0700, inside the private ``GPUC_HOME``):

- ``meta.json``, the launch record, written *before* any process exists: launch id, deadline, and what
  the wrapper runs (command, environment, work directory, uid); once started it also holds ``ref``;
- ``claim``, created atomically by the wrapper as its first act (its pid and start time), or by a
  restarted backend for a record nobody claimed ("abandoned");
- ``exit_code``, written by the wrapper when the command ends;
- ``reported`` and ``late_ends.json``, what of the runs' ends the commons has recorded, and the ends of
  earlier runs it has not yet (``backends.local_records``): every end is reported until the engine
  acknowledges it, so a server that dies in between loses none.

Each launch starts ``python -I -S wrapper.pyc <job dir>`` (the wrapper, compiled into the state
directory when the backend starts) in a new session with an empty environment, so the wrapper's pid
is the job's process group id and one ``killpg`` reaches the group; when the server runs as root the
job itself runs under a uid of its own, and when it ends every process of that uid is killed too. A
restarted server is not the parent of the jobs it adopts; it reads ``exit_code``. The reference
returned by ``launch`` is ``"<pid>:<start_ticks>"``; a process is "ours and alive" only while
``/proc/<pid>/stat`` shows that start time and is not a zombie, which survives pid reuse. Time limits
and cancels send SIGTERM to the group, then SIGKILL after ``grace_s``; a preemption with the run's own
grace period (``backends.local_stops``). Each poll reports a run's checkpoint file as it changes.

No crash can run a job twice or leave one running unseen. A crash before the record leaves nothing; a
crash after it leaves a record, with or without a process. ``adopt`` of a ``pending:`` launch reads the
claim: the wrapper's claim names the process; no claim (and no reference recorded) is claimed for
"abandoned" and reported ``lost`` (the engine requeues the job), and a wrapper that starts after that
finds the claim taken and runs nothing. So a job process without a record cannot exist.

A job's logs are appended to over its runs; a rerun's open with a line that says which run starts, when
and on which GPUs (``backends.run_header``).

The placement's GPU indices become ``CUDA_VISIBLE_DEVICES`` (the first node's, since a local "node" is
the same machine); ``GPUC_NODE`` names the nodes and ``GPUC_GPUS`` lists ``node:i,j`` for every node.
The ``LaunchSpec``'s ``workdir`` is not used: a job runs in its own directory (``isolation.WorkArea``),
the same one in every run (a requeued job resumes from its checkpoints there), never in a directory
the submitter or the server named; its logs go to the spec's paths. A launch never waits for a
stopping run in its way (``LaunchDeferredError``; ``local_stops.vacate``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from gpucommons.backends import wrapper
from gpucommons.backends.isolation import (
    DEFAULT_JOB_UIDS,
    JobIdentity,
    UidRange,
    UidReserve,
    WorkArea,
    can_switch_user,
    compile_wrapper,
    identity_for,
    job_environment,
    open_log,
    secure_home,
    server_identity,
    start_wrapper,
    sweep_uid,
)
from gpucommons.backends.local_records import (
    END_KINDS,
    REPORTED_FILE,
    STOP_FILE,
    Tracked,
    acknowledge_end,
    end_kind,
    exit_code,
    preempted_at_s,
    read_meta,
    recorded_ref,
    reported,
    save_late_end,
    tracked_from_record,
    unwatched_runs,
)
from gpucommons.backends.local_stops import is_alive, kill, new_checkpoint, next_deadline_s, stop, vacate
from gpucommons.backends.processes import (
    alive,
    claimed_ref,
    int_or_none,
    killpg,
    parse_ref,
    proc_stat,
    read_json,
    write_json,
)
from gpucommons.backends.run_header import header
from gpucommons.backends.wrapper import CLAIM_FILE, EXIT_FILE, META_FILE
from gpucommons.engine.ports import PENDING_REF_PREFIX, BackendEvent, LaunchSpec, NodeUnavailableError

log = logging.getLogger(__name__)


def _devices(spec: LaunchSpec) -> frozenset[str]:
    """The GPUs a launch holds, as ``<node>:<gpu>``."""
    return frozenset(
        f"{name}:{gpu}"
        for name, (_, gpus) in zip(spec.node_names, spec.placement.node_gpus, strict=True)
        for gpu in gpus
    )


def _open_rerun(spec: LaunchSpec, now_s: float) -> None:
    """A rerun's logs first say where it starts (``backends.run_header``)."""
    line = header(spec, now_s)
    if line is None:
        return
    for path in (spec.stdout_path, spec.stderr_path):
        fd = open_log(path)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


class LocalBackend:
    """Real processes on this machine; see the module docstring for the on-disk contract.

    ``job_uids``: the uids jobs run as, one per running job, when the server is root (``FIRST-LAST``,
    setting ``GPUC_JOB_UIDS``). ``work_root``: where jobs' own directories go (default: made once in
    the system's temporary directory). ``home``: the server's ``GPUC_HOME``, made private at start."""

    name = "local"
    even_gangs = False  # each node's share is set per process through CUDA_VISIBLE_DEVICES
    stops_unknown = True  # everything it reports was started from its own state directory

    def __init__(
        self,
        state_dir: Path,
        grace_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        down_nodes: Sequence[str] = (),
        job_uids: str | UidRange = DEFAULT_JOB_UIDS,
        work_root: Path | None = None,
        home: Path | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.grace_s = grace_s
        self.clock = clock
        self.down_nodes = set(down_nodes)
        self.job_uids = UidRange.parse(job_uids) if isinstance(job_uids, str) else job_uids
        self.switch_user = can_switch_user()
        self._uids = UidReserve(self.job_uids)
        self._jobs: dict[int, Tracked] = {}
        self._ended: list[BackendEvent] = []  # ends seen outside ``poll``, reported by the next one
        if home is not None:
            try:
                secure_home(home)
            except OSError as exc:
                log.warning("cannot make %s private to the server user: %s", home, exc)
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        state_dir.chmod(0o700)
        self.work = WorkArea(state_dir, work_root)
        self.wrapper = compile_wrapper(state_dir)

    # -- Backend ---------------------------------------------------------------------------------
    def launch(self, spec: LaunchSpec) -> str:
        vacate(self._jobs.values(), spec.job_id, _devices(spec), self.clock())
        down = self.unavailable_nodes() & set(spec.node_names)
        if down:  # taken out of service since the decision (or while the GPUs were vacated)
            raise NodeUnavailableError(f"node {', '.join(sorted(down))} is out of service")
        job_dir = self.state_dir / str(spec.job_id)
        job_dir.mkdir(mode=0o700, exist_ok=True)
        last_uid = self._end_earlier_run(spec.job_id, self._jobs.pop(spec.job_id, None))
        for stale in (EXIT_FILE, CLAIM_FILE, META_FILE, REPORTED_FILE, STOP_FILE):
            (job_dir / stale).unlink(missing_ok=True)
        identity, uid_lock = self._identity(spec.job_id, last_uid)
        try:
            return self._launch(spec, job_dir, identity, last_uid, uid_lock)
        finally:
            if uid_lock is not None:
                os.close(uid_lock)  # the wrapper holds its own copy for as long as the job runs

    def _launch(
        self,
        spec: LaunchSpec,
        job_dir: Path,
        identity: JobIdentity,
        last_uid: int | None,
        uid_lock: int | None,
    ) -> str:
        workdir = self.work.prepare(spec.job_id, identity, last_uid)
        now = self.clock()
        meta: dict[str, object] = {
            "launch_id": spec.env.get("GPUC_LAUNCH_ID", ""),
            "deadline_s": now + spec.time_limit_s,
            "launched_s": now,
            "uid": identity.uid,
            "workdir": str(workdir),
            "command": list(spec.command),
            "env": job_environment(spec, workdir, identity),
            "devices": sorted(_devices(spec)),
        }
        _open_rerun(spec, now)
        write_json(job_dir / META_FILE, meta)  # the record exists before any process does
        popen = self._start_wrapper(job_dir, spec, () if uid_lock is None else (uid_lock,))
        stat = proc_stat(popen.pid)
        start_ticks = stat[1] if stat else 0
        ref = f"{popen.pid}:{start_ticks}"
        try:
            write_json(job_dir / META_FILE, {**meta, "ref": ref})
        except BaseException:  # a launch that reports failure must leave nothing running
            killpg(popen.pid, signal.SIGKILL)
            raise
        self._jobs[spec.job_id] = Tracked(
            spec.job_id,
            ref,
            popen.pid,
            start_ticks,
            now + spec.time_limit_s,
            job_dir,
            uid=identity.uid,
            workdir=workdir,
            popen=popen,
            devices=_devices(spec),
            launched_s=now,
        )
        return ref

    def cancel(self, job_id: int, backend_ref: str) -> None:
        self._stop_run(job_id, backend_ref, self.grace_s, preempted=False)

    def preempt(self, job_id: int, backend_ref: str, grace_s: float) -> None:
        """Stop a preempted run: SIGTERM now, SIGKILL once ``grace_s`` is over (``StopsGracefully``)."""
        self._stop_run(job_id, backend_ref, grace_s, preempted=True)

    def next_deadline_s(self) -> float | None:
        return next_deadline_s(self._jobs.values())

    def _stop_run(self, job_id: int, backend_ref: str, grace_s: float, *, preempted: bool) -> None:
        tracked = self._jobs.get(job_id) if job_id else None
        if tracked is None:
            parsed = parse_ref(backend_ref)
            if parsed is None or not alive(*parsed):
                return
            if not job_id:
                killpg(parsed[0], signal.SIGTERM)
                return
            # watched until it exits, so its end is reported (not its start: no segment); a stop
            # recorded before this server started keeps its grace period
            self._track_adopted(job_id, backend_ref, parsed)
            tracked = self._jobs[job_id]
            tracked.launched_s = None
        if not tracked.stopping:
            self._stop(tracked, "cancelled", grace_s, preempted=preempted)

    def poll(self) -> list[BackendEvent]:
        self._uids.release()  # kept for the last step's launches; this step's find their own
        now = self.clock()
        events, self._ended = self._ended, []
        for tracked in list(self._jobs.values()):
            if tracked.launched_s is not None:  # the segment's real start, after any wait in launch
                events.append(BackendEvent(tracked.job_id, "started", tracked.launched_s, tracked.ref))
                tracked.launched_s = None
            events.extend(new_checkpoint(tracked, now))
            event = self._check(tracked, now)
            if event is not None:
                events.append(event)
                del self._jobs[tracked.job_id]
        return events

    def adopt(self, running: Sequence[tuple[int, str]]) -> list[BackendEvent]:
        """Track every job first, then look at each: a job found ended has its uid swept only when
        no job just adopted holds that uid."""
        now = self.clock()
        events: list[BackendEvent] = []
        adopted: list[tuple[Tracked, float | None]] = []
        for job_id, ref in running:
            if job_id in self._jobs:
                continue
            outcome = self._resolve(job_id, ref, now)
            if isinstance(outcome, BackendEvent):
                events.append(outcome)
            else:
                adopted.append(outcome)
        for tracked, started_s in adopted:
            # The run's real start, for metering, even when it has ended since: a run that started
            # and ended while no server watched is charged from its launch, never from the decision.
            start_s = started_s if started_s is not None else tracked.launched_s
            tracked.launched_s = None
            if start_s is not None:
                events.append(BackendEvent(tracked.job_id, "started", start_s, tracked.ref))
            if self._is_alive(tracked):
                continue
            event = self._check(tracked, now)
            del self._jobs[tracked.job_id]
            if event is not None:
                events.append(event)
        events.extend(unwatched_runs(self.state_dir, {job_id for job_id, _ in running}, self.clock()))
        return events

    def unavailable_nodes(self) -> set[str]:
        return set(self.down_nodes)

    def acknowledge(self, events: Sequence[BackendEvent]) -> None:
        """The commons has recorded ``events``: the ends among them need not be reported again."""
        for event in events:
            ref = event.backend_ref
            if (
                event.job_id > 0
                and event.kind in END_KINDS
                and ref
                and not ref.startswith(PENDING_REF_PREFIX)
            ):
                acknowledge_end(self.state_dir / str(event.job_id), ref)

    # -- launching -------------------------------------------------------------------------------
    def _identity(self, job_id: int, last_uid: int | None) -> tuple[JobIdentity, int | None]:
        """Who the job runs as, and the descriptor of that uid's lock (``None``: no uid of its own)."""
        if not self.switch_user:
            return server_identity(), None
        held = {t.uid for t in self._jobs.values() if t.uid is not None}
        uid, lock = self._uids.take(job_id, held, last_uid)
        return identity_for(uid), lock

    def _start_wrapper(
        self, job_dir: Path, spec: LaunchSpec, keep_fds: tuple[int, ...]
    ) -> subprocess.Popen[bytes]:
        return start_wrapper(self.wrapper, job_dir, spec, keep_fds, self.clock)

    def _end_earlier_run(self, job_id: int, previous: Tracked | None) -> int | None:
        """Before a job's new segment: kill what its recorded earlier run still runs, tracked by this
        instance (a preempted run in its grace period) or not (a server that died left it), and keep
        its end until the commons has it (``save_late_end``): the segment it belonged to is charged up
        to then. Returns that run's uid."""
        job_dir = self.state_dir / str(job_id)
        now = self.clock()
        if previous is not None:
            killpg(previous.pid, signal.SIGKILL)
            if previous.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    previous.popen.wait(5)  # its wrapper gives the uid's lock back as it exits
            self._sweep(previous.uid, previous)
            code, ended_s = exit_code(job_dir, self.clock())
            kind = previous.stopping or end_kind(code)
            signalled = previous.signalled_s
            end = BackendEvent(job_id, kind, ended_s, previous.ref, code, signalled_s=signalled)
            self._keep_late_end(job_dir, end)
            return previous.uid
        meta = read_meta(job_dir)
        uid = int_or_none(meta.get("uid"))
        ref = recorded_ref(job_dir, meta)
        parsed = parse_ref(ref)
        if parsed is None:
            return uid
        signalled = preempted_at_s(job_dir, ref)
        if alive(*parsed):
            killpg(parsed[0], signal.SIGKILL)
            self._sweep(uid, None)
            self._keep_late_end(job_dir, BackendEvent(job_id, "cancelled", now, ref, signalled_s=signalled))
        elif not reported(job_dir):
            code, ended_s = exit_code(job_dir, now)
            if code is not None:  # else it ended unseen and when is not known: its segment stays as charged
                end = BackendEvent(job_id, end_kind(code), ended_s, ref, code, signalled_s=signalled)
                self._keep_late_end(job_dir, end)
        return uid

    def _keep_late_end(self, job_dir: Path, event: BackendEvent) -> None:
        save_late_end(job_dir, event)
        self._ended.append(event)

    # -- watching --------------------------------------------------------------------------------
    def _stop(self, tracked: Tracked, why: str, grace_s: float, *, preempted: bool = False) -> None:
        stop(tracked, why, grace_s, self.clock(), preempted=preempted)

    def _is_alive(self, tracked: Tracked) -> bool:
        return is_alive(tracked)

    def _sweep(self, uid: int | None, tracked: Tracked | None) -> None:
        """Kill every process of a job's uid, unless another job this backend tracks holds it."""
        if uid is None or not self.switch_user:
            return
        if any(t.uid == uid and t is not tracked for t in self._jobs.values()):
            return
        sweep_uid(uid)

    def _check(self, tracked: Tracked, now: float) -> BackendEvent | None:
        """Enforce the time limit and grace period; an event once the job's wrapper has exited."""
        if self._is_alive(tracked):
            if not tracked.stopping and now >= tracked.deadline_s:
                self._stop(tracked, "timeout", self.grace_s)
            elif tracked.stopping and now >= tracked.kill_at_s:
                kill(tracked)
            return None
        killpg(tracked.pid, signal.SIGKILL)  # leftovers the job spawned in its group
        code, ended_s = exit_code(tracked.job_dir, now)
        if code is None:  # the wrapper did not get to sweep the job's uid itself
            self._sweep(tracked.uid, tracked)
        if tracked.workdir is not None:
            WorkArea.lock(tracked.workdir)
        if tracked.stopping:
            return BackendEvent(
                tracked.job_id, tracked.stopping, ended_s, tracked.ref, code, signalled_s=tracked.signalled_s
            )
        if code is not None:
            kind = "finished" if code == 0 else "failed"
        elif read_json(tracked.job_dir / CLAIM_FILE).get("abandoned"):
            return BackendEvent(tracked.job_id, "lost", now, tracked.ref, None, "launch abandoned")
        elif tracked.popen is not None and tracked.popen.returncode is not None:
            kind, code = "failed", 128 + abs(tracked.popen.returncode)
        else:
            return BackendEvent(tracked.job_id, "lost", now, tracked.ref, None, "process vanished")
        return BackendEvent(tracked.job_id, kind, ended_s, tracked.ref, code)

    # -- adopting --------------------------------------------------------------------------------
    def _track_adopted(self, job_id: int, ref: str, parsed: tuple[int, int]) -> None:
        self._jobs[job_id] = tracked_from_record(self.state_dir / str(job_id), job_id, ref, parsed)

    def _resolve_pending(self, job_id: int, launch_id: str) -> str | None:
        """The process of a launch recorded as ``pending:<launch id>``, or ``None`` when none exists
        or ever will: an unclaimed record is claimed for "abandoned" here, atomically against the
        wrapper's own claim, so a wrapper that starts later runs nothing."""
        job_dir = self.state_dir / str(job_id)
        meta = read_meta(job_dir)
        if not meta or not launch_id or meta.get("launch_id") != launch_id:
            self._end_earlier_run(job_id, None)  # an older segment's record: its process must not run on
            return None
        claim_path = job_dir / CLAIM_FILE
        if not claim_path.exists():
            if meta.get("ref"):  # started, and the wrapper has no rival for its claim
                return str(meta["ref"])
            if wrapper.claim(str(job_dir), {"abandoned": True, "at_s": self.clock()}):
                return None
        return claimed_ref(read_json(claim_path)) or None

    def _resolve(self, job_id: int, ref: str, now: float) -> BackendEvent | tuple[Tracked, float | None]:
        """Track a job the caller counts as running, or the event that says it is not; the float is
        its start time when the launch is only now known to have happened."""
        started_s: float | None = None
        if ref.startswith(PENDING_REF_PREFIX) or not ref:
            resolved = self._resolve_pending(job_id, ref.removeprefix(PENDING_REF_PREFIX))
            if resolved is None:
                return BackendEvent(job_id, "lost", now, ref, None, "never launched")
            launched = read_meta(self.state_dir / str(job_id)).get(
                "launched_s"
            )  # when it really started, for metering
            ref, started_s = resolved, float(launched) if isinstance(launched, int | float) else now
        parsed = parse_ref(ref)
        if parsed is None:
            return BackendEvent(job_id, "lost", now, ref, None, f"unreadable reference {ref!r}")
        self._track_adopted(job_id, ref, parsed)
        return self._jobs[job_id], started_s
