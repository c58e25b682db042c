"""The Slurm backend: gpucommons decides, Slurm executes.

Each job segment becomes one batch job pinned to the nodes the policy chose (see ``slurm_submit``).
``poll`` reads ``squeue --json`` once per call and turns state changes of the tracked jobs into
``BackendEvent``s; jobs that Slurm has already forgotten (older than ``MinJobAge``) are looked up with
``sacct`` when accounting is on, else reported lost. Jobs named like ours (``gpuc-<id>``) that this
backend does not track are reported as ``unknown`` once, and while they run the GPUs they hold are
reported by ``held_gpus`` (taken out of the engine's snapshot) unless ``unknown_jobs = "cancel"``, in
which case the engine cancels them (``stops_unknown``).

Slurm states map to event kinds as follows: COMPLETED -> finished, FAILED/OUT_OF_MEMORY -> failed,
CANCELLED -> cancelled, TIMEOUT/DEADLINE -> timeout, NODE_FAIL/BOOT_FAIL/PREEMPTED -> lost, and PENDING
(or REQUEUE*) with a higher restart count than last seen -> requeued. After ``requeued`` the job stays in
Slurm's queue, pinned to the same nodes; ``started`` follows when it runs again, or the engine cancels it.

Charges follow Slurm's clock: ``started`` carries Slurm's StartTime whenever Slurm reports a job running,
after ``adopt`` too (a job still waiting in Slurm's queue when the service restarted is charged from
when Slurm started it, not from the decision), and a job that ended without ever running gets a
``started`` at its end, so it is charged nothing.

A preemption is graceful (``preempt``, design note 0016): Slurm signals the run at once (``scancel
--signal=TERM --full``: the batch script, which ``exec``s the job's command, and every step) and, when
its grace period is over, the next ``poll`` kills it (``scancel --signal=KILL --full``, then ``scancel``);
a run Slurm does not run (yet) is cancelled outright: a signal to a pending job would wait for it to
start. Its end reports when it was signalled, and the
job's next run is deferred (``LaunchDeferredError``) while it stops, for both use the same ``--chdir``.
Each poll reads a tracked run's checkpoint file in its working directory (``GPUC_CHECKPOINT_FILE``)
where this server can reach it; elsewhere a job reports checkpoints through the API. A run adopted
after a restart has no known working directory here, and a run a restarted server finds stopping is
an unknown job (held, or cancelled under ``unknown_jobs = "cancel"``).

An ``sbatch`` that times out may still have been accepted, so ``launch`` then looks the job up by its
name and its comment (which carries the launch id) before anything else happens: found, it is the
launch; not found or the lookup failed, ``LaunchUncertainError``, and the engine resolves the launch
through ``adopt`` (the same lookup) at its next step.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpucommons.backends.checkpoints import checkpoint_event, checkpoint_mtime_s
from gpucommons.backends.slurm_cli import SlurmCli, SlurmCommandError, SlurmTimeoutError
from gpucommons.backends.slurm_parse import (
    SACCT_FORMAT,
    SINFO_FORMAT,
    SlurmJob,
    held_gpus,
    node_unavailable,
    parse_sacct,
    parse_sinfo_nodes,
    parse_squeue_json,
)
from gpucommons.backends.slurm_submit import (
    LAUNCH_ID_ENV,
    SlurmConfig,
    build_submission,
    job_comment,
    job_name,
)
from gpucommons.engine.ports import BackendEvent, LaunchDeferredError, LaunchSpec, LaunchUncertainError

TERMINAL_KINDS: Mapping[str, str] = {
    "COMPLETED": "finished",
    "FAILED": "failed",
    "OUT_OF_MEMORY": "failed",
    "CANCELLED": "cancelled",
    "TIMEOUT": "timeout",
    "DEADLINE": "timeout",
    "NODE_FAIL": "lost",
    "BOOT_FAIL": "lost",
    "PREEMPTED": "lost",
    "REVOKED": "lost",
}
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "STOPPED", "SIGNALING"})
PENDING_REF_PREFIX = "pending:"  # a reference the engine recorded before launch returned
_GONE_MARKERS = ("invalid job id", "already completing or completed")
SACCT_LOOKBACK = "now-7days"  # how far back sacct looks for a launch by name


@dataclass(slots=True)
class _Tracked:
    """What this backend last reported for one Slurm job."""

    job_id: int
    restarts: int = 0
    started: bool = False
    workdir: Path | None = None  # its --chdir, where this backend launched it
    checkpoint_seen_s: float = 0.0


@dataclass(slots=True)
class _Stopping:
    """A run told to stop by a preemption: when the signal went, when it is killed."""

    job_id: int
    signalled_s: float
    kill_at_s: float
    killed: bool = False


class SlurmBackend:
    """A ``Backend`` (engine.ports) over Slurm's command-line clients. Not thread-safe: the engine
    calls it from one loop."""

    name = "slurm"
    even_gangs = True  # one sbatch request: the same GPUs per node on every node

    def __init__(
        self,
        config: SlurmConfig | None = None,
        cli: SlurmCli | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.config = config or SlurmConfig()
        self.cli = cli or SlurmCli(self.config.bin_dir, self.config.slurm_conf, self.config.command_timeout_s)
        # A job named like ours may be someone else's: by default it is reported and its GPUs held.
        self.stops_unknown = self.config.unknown_jobs == "cancel"
        # The longest operation: a launch (sbatch, then a lookup if it timed out) or a poll (squeue, sacct).
        self.max_call_s = 2 * self.config.command_timeout_s
        self._clock = clock
        self._tracked: dict[str, _Tracked] = {}
        self._ended: set[str] = set()  # Slurm ids of tracked jobs already reported as ended
        self._unknown_reported: set[str] = set()
        self._foreign: dict[str, SlurmJob] = {}  # running jobs named like ours that no one tracks
        self._stopping: dict[str, _Stopping] = {}  # Slurm id -> a preempted run in its grace period
        self._ours = re.compile(rf"^{re.escape(self.config.job_name_prefix)}\d+$")
        self._accounting = self.config.accounting

    # -- Backend protocol -------------------------------------------------------------------------

    def launch(self, spec: LaunchSpec) -> str:
        stopping = [ref for ref, s in self._stopping.items() if s.job_id == spec.job_id]
        if stopping:  # its earlier run may still write the checkpoint this one resumes from
            raise LaunchDeferredError(f"job {spec.job_id}'s earlier run {stopping[0]} is still stopping")
        submission = build_submission(self.config, spec)
        _prepare_dirs(spec)
        argv = ["sbatch", "--parsable", *submission.args]
        try:
            out = self.cli.run(argv, stdin=submission.script, env=submission.env)
        except SlurmTimeoutError as exc:
            ref = self._after_timeout(spec, exc)
        else:
            ref = out.strip().split(";")[0]
            if not ref.isdigit():
                raise SlurmCommandError(f"sbatch: unexpected answer {out.strip()[:80]!r}")
        self._tracked[ref] = _Tracked(spec.job_id, workdir=spec.workdir)
        return ref

    def _after_timeout(self, spec: LaunchSpec, exc: SlurmTimeoutError) -> str:
        """The Slurm id of a launch whose sbatch timed out, found by name and comment; else the
        outcome is unknown (``LaunchUncertainError``)."""
        try:
            found = self.lookup_launch(spec.job_id, spec.env.get(LAUNCH_ID_ENV, ""))
        except SlurmCommandError as lookup:
            raise LaunchUncertainError(f"{exc}; looking the job up failed too: {lookup}") from None
        if found is None:
            raise LaunchUncertainError(f"{exc}; Slurm lists no such job yet") from None
        return found.slurm_id

    def lookup_launch(
        self, job_id: int, launch_id: str, jobs: dict[str, SlurmJob] | None = None
    ) -> SlurmJob | None:
        """The Slurm job submitted for one launch, by its name and comment: in ``squeue`` (``jobs``, or
        a fresh listing), else in ``sacct`` when accounting is on (a job Slurm already forgot)."""
        if not launch_id:
            return None
        found = self._find_launch(self._squeue() if jobs is None else jobs, job_id, launch_id)
        if found is None and self._accounting_enabled():
            name = job_name(self.config, job_id)
            out = self.cli.run(
                ["sacct", "-n", "-X", "-P", "-o", SACCT_FORMAT, "--name", name, "-S", SACCT_LOOKBACK]
            )
            found = self._find_launch({j.slurm_id: j for j in parse_sacct(out)}, job_id, launch_id)
        return found

    def cancel(self, job_id: int, backend_ref: str) -> None:
        """Ask Slurm to cancel; the ``cancelled`` event follows from ``poll``. A job Slurm no longer
        knows is not an error: there is nothing left to cancel."""
        try:
            self.cli.run(["scancel", backend_ref])
        except SlurmCommandError as exc:
            if not any(marker in str(exc).lower() for marker in _GONE_MARKERS):
                raise

    def preempt(self, job_id: int, backend_ref: str, grace_s: float) -> None:
        """Signal the run now and kill it once ``grace_s`` is over (``StopsGracefully``); a run Slurm
        has not started yet is cancelled at once."""
        state = self.cli.run(["squeue", "-h", "-j", backend_ref, "-o", "%T"], check=False).strip()
        if state != "RUNNING":  # not started (or gone): nothing to checkpoint. A signal to a job Slurm
            self.cancel(job_id, backend_ref)  # keeps pending would wait until it runs (22.05)
            return
        now = self._clock()
        try:
            self.cli.run(["scancel", "--signal=TERM", "--full", backend_ref])
        except SlurmCommandError as exc:
            if any(marker in str(exc).lower() for marker in _GONE_MARKERS):
                return
            raise
        self._stopping[backend_ref] = _Stopping(job_id, now, now + max(0.0, grace_s))

    def next_deadline_s(self) -> float | None:
        return min((s.kill_at_s for s in self._stopping.values() if not s.killed), default=None)

    def poll(self) -> list[BackendEvent]:
        self._kill_overdue()
        jobs = self._squeue()
        events: list[BackendEvent] = []
        missing: list[str] = []
        now = self._clock()
        for ref, tracked in list(self._tracked.items()):
            job = jobs.get(ref)
            if job is None:
                missing.append(ref)
            else:
                events.extend(self._checkpoint(ref, tracked, now))
                events.extend(self._advance(ref, tracked, job))
        events.extend(self._resolve_missing(missing))
        events.extend(self._unknown(jobs.values()))
        for ref in [r for r in self._stopping if r not in self._tracked and r not in jobs]:
            del self._stopping[ref]  # never tracked here, and gone: nothing waits for its end
        return events

    def _checkpoint(self, ref: str, tracked: _Tracked, now: float) -> list[BackendEvent]:
        mtime_s = checkpoint_mtime_s(tracked.workdir, tracked.job_id)
        event = checkpoint_event(tracked.job_id, ref, mtime_s, tracked.checkpoint_seen_s, now)
        if event is None:
            return []
        tracked.checkpoint_seen_s = mtime_s
        return [event]

    def _kill_overdue(self) -> None:
        """Kill the preempted runs whose grace period is over: SIGKILL at once to every step (the
        batch script too), then a cancel in case a step outlives it. Tried again at the next poll if
        Slurm could not be reached."""
        now = self._clock()
        for ref, stopping in self._stopping.items():
            if stopping.killed or now < stopping.kill_at_s:
                continue
            for argv in (["scancel", "--signal=KILL", "--full", ref], ["scancel", ref]):
                try:
                    self.cli.run(argv)
                except SlurmCommandError as exc:
                    if not any(marker in str(exc).lower() for marker in _GONE_MARKERS):
                        raise
            stopping.killed = True

    def adopt(self, running: Sequence[tuple[int, str]]) -> list[BackendEvent]:
        """Track jobs recorded as running, as Slurm sees them now; safe to call at any step. A job
        Slurm runs (or ran) gets ``started`` at its StartTime; one Slurm has back in its queue after a
        restart count above zero is reported requeued; ended or vanished jobs get their final event. A
        reference recorded as ``pending:<launch id>`` is resolved by name and comment (``squeue``, then
        ``sacct``); its ``started`` event then carries the real Slurm id, and one that was never
        submitted is reported ``lost`` (``never launched``). Submits nothing."""
        jobs = self._squeue()
        events: list[BackendEvent] = []
        missing: list[str] = []
        for job_id, recorded_ref in running:
            ref = recorded_ref
            if ref.startswith(PENDING_REF_PREFIX) or not ref:
                found = self.lookup_launch(job_id, ref.removeprefix(PENDING_REF_PREFIX), jobs)
                if found is None:
                    events.append(BackendEvent(job_id, "lost", self._clock(), ref, detail="never launched"))
                    continue
                ref = found.slurm_id
                jobs.setdefault(ref, found)
            job = jobs.get(ref)
            previous = self._tracked.get(ref)
            tracked = _Tracked(job_id, restarts=previous.restarts if previous is not None else 0)
            if previous is None and job is not None and job.state in RUNNING_STATES | set(TERMINAL_KINDS):
                tracked.restarts = job.restarts
            self._tracked[ref] = tracked
            self._ended.discard(ref)
            if job is None:
                missing.append(ref)
            else:
                events.extend(self._advance(ref, tracked, job))
        events.extend(self._resolve_missing(missing))
        return events

    def _find_launch(self, jobs: dict[str, SlurmJob], job_id: int, launch_id: str) -> SlurmJob | None:
        """The Slurm job submitted for a launch recorded only as pending (a crash right after sbatch)."""
        comment = job_comment(job_id, launch_id)
        matches = [j for j in jobs.values() if j.comment == comment]
        return max(matches, key=lambda j: int(j.slurm_id)) if launch_id and matches else None

    def unavailable_nodes(self) -> set[str]:
        out = self.cli.run(["sinfo", "-N", "-h", "-o", SINFO_FORMAT])
        return {self.config.gpuc_node(n.name) for n in parse_sinfo_nodes(out) if node_unavailable(n.state)}

    def held_gpus(self) -> dict[str, int | None]:
        """GPUs that running jobs named like ours but tracked by no one hold, per gpucommons node, as
        of the last poll (``HoldsForeignGpus``); ``None``: the whole node."""
        held: dict[str, int | None] = {}
        for job in self._foreign.values():
            for slurm_node, count in held_gpus(job).items():
                node = self.config.gpuc_node(slurm_node)
                before = held.get(node, 0)
                held[node] = None if count is None or before is None else before + count
        return held

    # -- internals ----------------------------------------------------------------------------------

    def _squeue(self) -> dict[str, SlurmJob]:
        return {j.slurm_id: j for j in parse_squeue_json(self.cli.run(["squeue", "--json"]))}

    def _event(self, tracked: _Tracked, kind: str, at_s: float | None, ref: str, **kw: Any) -> BackendEvent:
        return BackendEvent(tracked.job_id, kind, at_s if at_s is not None else self._clock(), ref, **kw)

    def _advance(self, ref: str, tracked: _Tracked, job: SlurmJob) -> list[BackendEvent]:
        """Events that take ``tracked`` from what was last reported to ``job``'s current state."""
        events: list[BackendEvent] = []
        if job.restarts > tracked.restarts:
            detail = f"Slurm requeued it ({job.reason})"
            events.append(self._event(tracked, "requeued", None, ref, detail=detail))
            tracked.restarts = job.restarts
            tracked.started = False
        kind = TERMINAL_KINDS.get(job.state)
        ended_after_run = kind is not None and bool(job.nodes) and job.start_s is not None
        ran = job.state in RUNNING_STATES or ended_after_run
        if ran and not tracked.started:
            events.append(self._event(tracked, "started", job.start_s, ref, detail=job.nodes))
            tracked.started = True
        elif kind is not None and not tracked.started:  # it ended without running: it held nothing
            at_s = job.end_s or job.start_s
            events.append(self._event(tracked, "started", at_s, ref, detail="ended before it ran"))
        if kind is not None:
            reason = f" ({job.reason})" if job.reason not in ("", "None") else ""
            detail = f"Slurm state {job.state}{reason}"
            stopping = self._stopping.pop(ref, None)
            signalled = stopping.signalled_s if stopping is not None else None
            end = self._event(
                tracked, kind, job.end_s, ref, exit_code=job.exit_code, detail=detail, signalled_s=signalled
            )
            events.append(end)
            del self._tracked[ref]
            self._ended.add(ref)
        return events

    def _accounting_enabled(self) -> bool:
        if self._accounting is None:
            out = self.cli.run(["scontrol", "show", "config"], check=False)
            self._accounting = "accounting_storage/slurmdbd" in out
        return self._accounting

    def _resolve_missing(self, refs: list[str]) -> list[BackendEvent]:
        """Final events for tracked jobs that squeue no longer lists."""
        if not refs:
            return []
        found: dict[str, SlurmJob] = {}
        if self._accounting_enabled():
            out = self.cli.run(["sacct", "-n", "-X", "-P", "-o", SACCT_FORMAT, "-j", ",".join(refs)])
            found = {j.slurm_id: j for j in parse_sacct(out)}
        events: list[BackendEvent] = []
        for ref in refs:
            tracked = self._tracked[ref]
            job = found.get(ref)
            if job is not None and job.state in TERMINAL_KINDS:
                events.extend(self._advance(ref, tracked, job))
            elif job is None:
                detail = f"Slurm no longer knows job {ref}"
                events.append(self._event(tracked, "lost", None, ref, detail=detail))
                self._stopping.pop(ref, None)
                del self._tracked[ref]
                self._ended.add(ref)
        return events

    def _unknown(self, jobs: Any) -> list[BackendEvent]:
        """Active jobs named like ours that no one here launched or adopted: each reported once, and
        the running ones remembered for ``held_gpus``."""
        events = []
        self._foreign = {}
        for job in jobs:
            ref = job.slurm_id
            if ref in self._tracked or ref in self._ended:
                continue
            if job.state in TERMINAL_KINDS or not self._ours.match(job.name):
                continue
            if job.state in RUNNING_STATES:
                self._foreign[ref] = job
            if ref in self._unknown_reported:
                continue
            self._unknown_reported.add(ref)
            detail = f"Slurm job {ref} named {job.name} is not known to gpucommons ({job.state})"
            events.append(BackendEvent(0, "unknown", self._clock(), ref, detail=detail))
        return events


def _prepare_dirs(spec: LaunchSpec) -> None:
    """Create the work and log directories: slurmd opens the log files before the job runs and fails
    the job if their directory is missing. Best effort: where the service does not share the nodes'
    file system the directories must be provided by the site."""
    for path in (spec.workdir, spec.stdout_path.parent, spec.stderr_path.parent):
        with contextlib.suppress(OSError):
            path.mkdir(parents=True, exist_ok=True)


def make_slurm_backend(settings: Mapping[str, Any] | SlurmConfig | None = None) -> SlurmBackend:
    """Build a backend from a settings mapping (keys: the fields of ``SlurmConfig``); bad keys or
    values raise ``ConfigError`` with the offending key."""
    return SlurmBackend(SlurmConfig.from_settings(settings))
