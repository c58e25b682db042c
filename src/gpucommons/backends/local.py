"""``LocalBackend``: jobs run as real process groups on this machine, on logical GPUs.

Each launch starts ``python -m gpucommons.backends.wrapper EXIT_FILE -- CMD...`` in a new session, so the
wrapper's pid is the job's process group id and one ``killpg`` reaches everything the job spawned. The
wrapper writes the command's exit code to a file: a restarted server is not the parent of the jobs it
adopts and cannot ``wait()`` for them, but it can read that file.

Per job the backend keeps ``<state_dir>/<job_id>/``: ``meta.json`` (pid, kernel start time, deadline,
launch id) and ``exit_code``. The reference returned by ``launch`` is ``"<pid>:<start_ticks>"``; a process
is "ours and alive" only while ``/proc/<pid>/stat`` shows that start time and is not a zombie, which
survives pid reuse. Time limits and cancels send SIGTERM to the group, then SIGKILL after ``grace_s``.

The placement's GPU indices become ``CUDA_VISIBLE_DEVICES`` (the first node's, since a local "node" is
the same machine); ``GPUC_NODE`` names the nodes and ``GPUC_GPUS`` lists ``node:i,j`` for every node.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gpucommons.engine.ports import BackendEvent, LaunchSpec

PENDING_REF_PREFIX = "pending:"
"""A reference recorded before launch (``pending:<launch id>``): adopt() resolves it through the
launch id the backend saved, so a crash between "decided" and "launched" never runs a job twice."""


@dataclass
class _Tracked:
    job_id: int
    ref: str
    pid: int
    start_ticks: int
    deadline_s: float
    job_dir: Path
    popen: subprocess.Popen[bytes] | None = None
    stopping: str = ""  # "", "cancelled" or "timeout"
    term_sent_s: float = 0.0


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process, or ``None`` if it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _alive(pid: int, start_ticks: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[1] == start_ticks and stat[0] not in ("Z", "X")


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _parse_ref(ref: str) -> tuple[int, int] | None:
    try:
        pid, ticks = ref.split(":")
        return int(pid), int(ticks)
    except ValueError:
        return None


def _write_json(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class LocalBackend:
    """Real processes on this machine; see the module docstring for the on-disk contract."""

    name = "local"
    even_gangs = False  # each node's share is set per process through CUDA_VISIBLE_DEVICES
    stops_unknown = True  # everything it reports was started from its own state directory

    def __init__(
        self,
        state_dir: Path,
        grace_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        down_nodes: Sequence[str] = (),
    ) -> None:
        self.state_dir = state_dir
        self.grace_s = grace_s
        self.clock = clock
        self.down_nodes = set(down_nodes)
        self._jobs: dict[int, _Tracked] = {}
        state_dir.mkdir(parents=True, exist_ok=True)

    # -- Backend ---------------------------------------------------------------------------------
    def launch(self, spec: LaunchSpec) -> str:
        previous = self._jobs.pop(spec.job_id, None)
        if previous is not None:  # a preempted segment still in its grace period: end it now
            _killpg(previous.pid, signal.SIGKILL)
        job_dir = self.state_dir / str(spec.job_id)
        job_dir.mkdir(parents=True, exist_ok=True)
        for stale in ("exit_code", "meta.json"):
            (job_dir / stale).unlink(missing_ok=True)
        for path in (spec.stdout_path, spec.stderr_path):
            path.parent.mkdir(parents=True, exist_ok=True)
        spec.workdir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "gpucommons.backends.wrapper", str(job_dir / "exit_code"), "--"]
        with open(spec.stdout_path, "ab") as out, open(spec.stderr_path, "ab") as err:
            popen = subprocess.Popen(
                [*argv, *spec.command],
                cwd=spec.workdir,
                env=self._environment(spec),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        stat = _proc_stat(popen.pid)
        start_ticks = stat[1] if stat else 0
        ref = f"{popen.pid}:{start_ticks}"
        deadline_s = self.clock() + spec.time_limit_s
        meta: dict[str, object] = {
            "ref": ref,
            "deadline_s": deadline_s,
            "launched_s": self.clock(),
            "launch_id": spec.env.get("GPUC_LAUNCH_ID", ""),
        }
        _write_json(job_dir / "meta.json", meta)
        self._jobs[spec.job_id] = _Tracked(
            spec.job_id, ref, popen.pid, start_ticks, deadline_s, job_dir, popen
        )
        return ref

    def cancel(self, job_id: int, backend_ref: str) -> None:
        tracked = self._jobs.get(job_id) if job_id else None
        if tracked is None:
            parsed = _parse_ref(backend_ref)
            if parsed is not None and _alive(*parsed):
                _killpg(parsed[0], signal.SIGTERM)
                if job_id:
                    self._track_adopted(job_id, backend_ref, parsed)
                    self._jobs[job_id].stopping = "cancelled"
                    self._jobs[job_id].term_sent_s = self.clock()
            return
        if not tracked.stopping:
            self._stop(tracked, "cancelled")

    def poll(self) -> list[BackendEvent]:
        now = self.clock()
        events = []
        for tracked in list(self._jobs.values()):
            event = self._check(tracked, now)
            if event is not None:
                events.append(event)
                del self._jobs[tracked.job_id]
        return events

    def adopt(self, running: Sequence[tuple[int, str]]) -> list[BackendEvent]:
        events = []
        known = {job_id for job_id, _ in running}
        for job_id, ref in running:
            if job_id in self._jobs:
                continue
            event = self._adopt_one(job_id, ref)
            if event is not None:
                events.append(event)
        events.extend(self._strays(known))
        return events

    def unavailable_nodes(self) -> set[str]:
        return set(self.down_nodes)

    # -- helpers ---------------------------------------------------------------------------------
    def _environment(self, spec: LaunchSpec) -> dict[str, str]:
        env = dict(os.environ)
        env.update(spec.env)
        first_gpus = spec.placement.node_gpus[0][1] if spec.placement.node_gpus else ()
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in first_gpus)
        env["GPUC_JOB_ID"] = str(spec.job_id)
        env["GPUC_NODE"] = ",".join(spec.node_names)
        env["GPUC_GPUS"] = ";".join(
            f"{name}:{','.join(str(i) for i in gpus)}"
            for name, (_, gpus) in zip(spec.node_names, spec.placement.node_gpus, strict=False)
        )
        env["GPUC_GPU_MODEL"] = spec.gpu_model
        env["GPUC_ACCOUNT"] = spec.account
        return env

    def _stop(self, tracked: _Tracked, why: str) -> None:
        tracked.stopping = why
        tracked.term_sent_s = self.clock()
        _killpg(tracked.pid, signal.SIGTERM)

    def _is_alive(self, tracked: _Tracked) -> bool:
        if tracked.popen is not None:
            return tracked.popen.poll() is None
        return _alive(tracked.pid, tracked.start_ticks)

    def _check(self, tracked: _Tracked, now: float) -> BackendEvent | None:
        """Enforce the time limit and grace period; an event once the job's wrapper has exited."""
        if self._is_alive(tracked):
            if not tracked.stopping and now >= tracked.deadline_s:
                self._stop(tracked, "timeout")
            elif tracked.stopping and now - tracked.term_sent_s >= self.grace_s:
                _killpg(tracked.pid, signal.SIGKILL)
            return None
        _killpg(tracked.pid, signal.SIGKILL)  # leftovers the job spawned in its group
        exit_code, ended_s = self._exit_code(tracked.job_dir, now)
        if tracked.stopping:
            kind = tracked.stopping
        elif exit_code is not None:
            kind = "finished" if exit_code == 0 else "failed"
        elif tracked.popen is not None and tracked.popen.returncode is not None:
            kind, exit_code = "failed", 128 + abs(tracked.popen.returncode)
        else:
            return BackendEvent(tracked.job_id, "lost", now, tracked.ref, None, "process vanished")
        return BackendEvent(tracked.job_id, kind, ended_s, tracked.ref, exit_code)

    @staticmethod
    def _exit_code(job_dir: Path, now: float) -> tuple[int | None, float]:
        path = job_dir / "exit_code"
        try:
            return int(path.read_text().strip()), path.stat().st_mtime
        except (OSError, ValueError):
            return None, now

    def _read_meta(self, job_id: int) -> dict[str, object]:
        try:
            data = json.loads((self.state_dir / str(job_id) / "meta.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _track_adopted(self, job_id: int, ref: str, parsed: tuple[int, int]) -> None:
        deadline = self._read_meta(job_id).get("deadline_s")
        deadline_s = float(deadline) if isinstance(deadline, int | float) else float("inf")
        self._jobs[job_id] = _Tracked(
            job_id, ref, parsed[0], parsed[1], deadline_s, self.state_dir / str(job_id)
        )

    def _adopt_one(self, job_id: int, ref: str) -> BackendEvent | None:
        now = self.clock()
        started, started_s = False, now
        if ref.startswith(PENDING_REF_PREFIX) or not ref:
            meta = self._read_meta(job_id)
            launch_id = ref.removeprefix(PENDING_REF_PREFIX)
            if not meta or not launch_id or meta.get("launch_id") != launch_id:
                return BackendEvent(job_id, "lost", now, ref, None, "never launched")
            ref, started = str(meta.get("ref", "")), True
            launched = meta.get("launched_s")  # when it really started, for metering
            started_s = float(launched) if isinstance(launched, int | float) else now
        parsed = _parse_ref(ref)
        if parsed is None:
            return BackendEvent(job_id, "lost", now, ref, None, f"unreadable reference {ref!r}")
        self._track_adopted(job_id, ref, parsed)
        tracked = self._jobs[job_id]
        if self._is_alive(tracked):
            return BackendEvent(job_id, "started", started_s, ref) if started else None
        del self._jobs[job_id]
        return self._check(tracked, now)

    def _strays(self, known: set[int]) -> list[BackendEvent]:
        """Live processes this backend started for jobs the caller no longer counts as running."""
        events = []
        for job_dir in sorted(self.state_dir.iterdir()):
            if not job_dir.name.isdigit() or int(job_dir.name) in known:
                continue
            parsed = _parse_ref(str(self._read_meta(int(job_dir.name)).get("ref", "")))
            if parsed is not None and _alive(*parsed):
                ref = f"{parsed[0]}:{parsed[1]}"
                events.append(BackendEvent(0, "unknown", self.clock(), ref, None, f"job {job_dir.name}"))
        return events
