"""The service under chaos: ``gpuc up`` / ``gpuc server`` and standalone ``gpuc scheduler`` processes of
this checkout on one home and database, started, killed with ``kill -9`` and restarted by the harness.

Every process gets its own session (so a kill reaches exactly the one process the harness names, by
pid, and never a job: jobs run in sessions of their own), the same environment (home, database URL,
cluster, scheduler interval, drain file) and a log file under the harness's work directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Engine

from gpucommons.store.lease import SchedulerLeaseRow

GPUC = [sys.executable, "-c", "from gpucommons.cli.app import main; main()"]  # this checkout's gpuc
START_TIMEOUT_S = 90.0
POLL_S = 0.1


@dataclass
class Proc:
    """One process of the service: ``role`` is ``server`` (API only), ``server+scheduler`` (API with
    the loop in-process) or ``scheduler`` (the loop alone)."""

    role: str
    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def schedules(self) -> bool:
        return self.role != "server"

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Service:
    """The service's processes on one home. ``env`` is the whole environment they run with."""

    home: Path
    port: int
    env: dict[str, str]
    logs: Path
    engine: Engine
    gpuc: list[str] = field(default_factory=lambda: list(GPUC))
    server: Proc | None = None
    schedulers: list[Proc] = field(default_factory=list)
    started: int = 0

    def note(self, what: str) -> None:
        """Append one line to ``logs/actions.log``: when (epoch seconds, the jobs' clock) and what, so a
        finding can be laid beside the kills and restarts around it."""
        with open(self.logs / "actions.log", "a") as log:
            log.write(f"{time.time():.3f} {what}\n")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, role: str, *args: str) -> Proc:
        self.started += 1
        log = open(self.logs / f"{self.started:03d}-{role}.log", "ab")  # noqa: SIM115 - the child's
        try:
            popen = subprocess.Popen(
                [*self.gpuc, *args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        self.note(f"started {role} pid {popen.pid} ({' '.join(args)})")
        return Proc(role, popen)

    def up(self) -> None:
        """The first start: ``gpuc up --empty`` (migrates, creates the admin, writes credentials)."""
        self.server = self._spawn("server+scheduler", "up", "--empty", "--port", str(self.port))
        self.wait_healthy()

    def start_server(self, scheduler: bool) -> None:
        args = ["server", "--port", str(self.port)]
        if not scheduler:
            args.append("--no-scheduler")
        self.server = self._spawn("server+scheduler" if scheduler else "server", *args)
        self.wait_healthy()

    def start_scheduler(self) -> Proc:
        proc = self._spawn("scheduler", "scheduler")
        self.schedulers.append(proc)
        return proc

    def wait_healthy(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Wait until the server answers ``/healthz`` (polling with a deadline)."""
        assert self.server is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.server.alive():
                raise RuntimeError(f"the server exited with {self.server.popen.returncode}; see {self.logs}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(POLL_S)
        raise RuntimeError(f"the server did not answer within {timeout_s:.0f} s; see {self.logs}")

    def kill9(self, proc: Proc) -> None:
        """``kill -9`` exactly this process, and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        self.note(f"kill -9 {proc.role} pid {proc.pid}")
        proc.popen.wait(30)
        if proc is self.server:
            self.server = None
        if proc in self.schedulers:
            self.schedulers.remove(proc)

    def scheduling(self) -> list[Proc]:
        """The live processes that run a scheduler loop."""
        procs = [*self.schedulers, *([self.server] if self.server is not None else [])]
        return [p for p in procs if p.schedules and p.alive()]

    def lease_holder(self) -> Proc | None:
        """The process whose scheduler holds the lease now (holders are ``host:pid:random``)."""
        with self.engine.connect() as conn:
            holder = conn.execute(select(SchedulerLeaseRow.holder)).scalar()
        if not holder:
            return None
        parts = str(holder).split(":")
        pid = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else -1
        return next((p for p in self.scheduling() if p.pid == pid), None)

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop every process the harness started: SIGTERM, then SIGKILL after ``timeout_s``."""
        procs = [*self.schedulers, *([self.server] if self.server is not None else [])]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in procs:
            try:
                proc.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.popen.wait(30)
        self.server, self.schedulers = None, []


def _start_ticks(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else int(fields[19])


def live_job_processes(home: Path) -> list[tuple[int, int]]:
    """(job id, wrapper pid) of every job process of the local backend still alive: each launch record
    names its wrapper (``pid:start_ticks`` in the claim, or the reference saved after the start)."""
    alive = []
    for job_dir in sorted((home / "backend" / "local").glob("[0-9]*")):
        refs = []
        with contextlib.suppress(OSError, ValueError):
            claim = json.loads((job_dir / "claim").read_text())
            refs.append(f"{claim.get('pid')}:{claim.get('start_ticks')}")
        with contextlib.suppress(OSError, ValueError):
            refs.append(str(json.loads((job_dir / "meta.json").read_text()).get("ref", "")))
        for ref in refs:
            pid, _, ticks = ref.partition(":")
            if pid.isdigit() and ticks.isdigit() and _start_ticks(int(pid)) == int(ticks):
                alive.append((int(job_dir.name), int(pid)))
                break
    return alive


def kill_job_processes(processes: list[tuple[int, int]]) -> None:
    for _, pid in processes:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
