"""``gpuc up`` as a real server process and the job commands against it: the five-minute walk-through,
a kill -9 of the server while jobs run, and bad input answered with one line."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from gpucommons.cli.credentials import load_credentials
from gpucommons.client import GpucClient
from tests.components import wait_until
from tests.job_release import Release, releases

__all__ = ["releases"]

pytestmark = pytest.mark.timeout(120)
GPUC = [str(Path(sys.executable).parent / "gpuc")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    home: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. the Slurm backend's settings

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPUC_")}
        return {**env, "GPUC_HOME": str(self.home), "GPUC_SCHEDULER_INTERVAL_S": "0.3", **self.extra_env}

    def start(self, *args: str) -> None:
        cmd = [*GPUC, "up", "--port", str(self.port), *args]
        log = open(self.home.parent / "server.log", "ab")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log, start_new_session=True)

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 30, lambda: (self.home.parent / "server.log").read_text(), poll_s=0.2)

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def gpuc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*GPUC, *args], env=self.env, capture_output=True, text=True, timeout=60)

    def client(self) -> GpucClient:
        creds = load_credentials(self.home)
        assert creds is not None
        return GpucClient(creds.url, creds.token)

    def wait_job(self, job_id: int, states: tuple[str, ...], wait_s: float = 60) -> dict[str, object]:
        def reached() -> dict[str, object] | None:
            job = self.client().get_job(job_id)
            return job.model_dump() if job.state in states else None

        return wait_until(reached, wait_s, f"job {job_id} never reached {states}", poll_s=0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for meta in (self.home / "backend" / "local").glob("*/meta.json"):
            pid = int(json.loads(meta.read_text())["ref"].split(":")[0])
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "home", free_port())
    yield srv
    srv.stop()


def submitted_id(result: subprocess.CompletedProcess[str]) -> int:
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[2])


def test_walk_through_on_a_fresh_home(server: Server) -> None:
    server.start("--empty")
    admin = server.client()
    inst = admin.create_institution("Seoul AI Startup", "startup", "capital")
    project = admin.create_project("vision", inst.id)
    me = admin.whoami()
    admin.add_member(project.id, me.id, "pi")
    program = admin.create_program(
        name="2026-call",
        model="H100",
        capacity_gpus=16,
        unit_gpus=8,
        duration_days=30,
        price_krw_per_gpu_hour=2000,
    )
    proposal = admin.submit_proposal(program.id, project.id, 8, "vision models")
    award = admin.create_award(
        project_id=project.id,
        program_id=program.id,
        proposal_id=proposal.id,
        gpu_hours_budget=100.0,
        guaranteed_gpus=8,
    )
    admin.activate_award(award.id)
    script = 'import os; print(os.environ["CUDA_VISIBLE_DEVICES"])'
    job_id = submitted_id(
        server.gpuc("submit", "--gpus", "2", "--project", "vision", "--", "python3", "-c", script)
    )
    server.wait_job(job_id, ("finished",))
    logs = server.gpuc("logs", str(job_id))
    gpus = logs.stdout.strip().split(",")
    assert len(gpus) == 2 and len(set(gpus)) == 2, logs.stdout
    shown = json.loads(server.gpuc("show", str(job_id), "--json").stdout)
    assert (shown["state"], shown["exit_code"], shown["award_id"]) == ("finished", 0, award.id)
    ran_on = shown["last_gpus"]  # kept after the end: the GPUs its log printed
    assert len(ran_on) == 2 and {g.split(":")[1] for g in ran_on} == set(gpus)
    history = server.gpuc("show", str(job_id)).stdout.split("history:\n")[1].splitlines()
    assert [line.split()[2] for line in history] == ["event", "submitted", "started", "ended"]
    assert history[2].split()[3:5] == ["1", ",".join(ran_on)]  # run 1, on its GPUs
    assert history[3].endswith("finished: exit code 0")
    usage = json.loads(server.gpuc("usage", "--json").stdout)
    line = next(u for u in usage if u["award_id"] == award.id)
    assert line["gpu_hours"] > 0 and isinstance(line["cost_krw"], int)  # whole won, at list price
    assert abs(line["cost_krw"] - line["gpu_hours"] * 2000) <= 0.5
    assert "vision" in server.gpuc("usage").stdout
    assert "job" in server.gpuc("why", str(job_id)).stdout


def test_kill9_while_jobs_run_loses_nothing_and_starts_nothing_twice(
    server: Server, releases: Callable[[str], Release]
) -> None:
    server.start()
    release = releases("after-restart")
    marker = f'echo "$GPUC_JOB_ID $CUDA_VISIBLE_DEVICES"; {release.shell}'  # to the log, appended per run
    ids = [submitted_id(server.gpuc("submit", "--gpus", "4", "--", "sh", "-c", marker)) for _ in range(4)]
    for job_id in ids:
        assert server.wait_job(job_id, ("running", "finished"))["state"] == "running"
    running = [server.client().get_job(i) for i in ids]
    assigned = [g for job in running for g in job.assigned_gpus]
    assert len(assigned) == 16 and len(set(assigned)) == 16  # no GPU given to two jobs
    server.kill9()
    server.start()
    release.release()  # the jobs ran on while no server watched; they end under the new one
    for job_id in ids:
        assert (
            server.wait_job(job_id, ("finished", "failed", "lost", "cancelled", "timeout"))["state"]
            == "finished"
        )
    launches = [
        line for i in ids for line in (server.home / "jobs" / str(i) / "stdout.log").read_text().split("\n")
    ]
    assert sorted(int(line.split()[0]) for line in launches if line) == sorted(ids)
    with sqlite3.connect(server.home / "gpuc.db") as db:
        assert db.execute("SELECT count(*) FROM allocations").fetchone() == (0,)
        restarts = db.execute("SELECT sum(restarts) FROM jobs").fetchone()
    assert restarts == (0,)


def test_bad_input_gets_one_line_and_changes_nothing(server: Server) -> None:
    server.start()
    cases = [
        (["submit", "--project", "nope", "--", "true"], "project 'nope' does not exist"),
        (["submit", "--gpus", "0", "--", "true"], "gpus: must be at least 1"),
        (["submit", "--gpus", "-2", "--", "true"], "gpus: must be at least 1"),
        (["submit", "--gpus", "17", "--", "true"], "can ever hold 17"),
        (["submit", "--time", "ninety", "--", "true"], "malformed time limit"),
        (["submit", "--grace", "20m", "--", "true"], "grace period '20m' is above the server's cap of 600 s"),
        (["submit", "--grace", "soon", "--", "true"], "malformed grace period 'soon'"),
        (["submit", "--checkpoint-every", "often", "--", "true"], "malformed checkpoint interval"),
        (["show", "999"], "job 999 not found"),
    ]
    for args, want in cases:
        result = server.gpuc(*args)
        assert result.returncode == 2, result
        assert want in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr
    admin = server.client()
    soon = datetime.now(UTC) + timedelta(seconds=1)
    token = admin.create_token(expires_at=soon).token
    env = {**server.env, "GPUC_TOKEN": token}

    def refused() -> subprocess.CompletedProcess[str] | None:
        done = subprocess.run([*GPUC, "queue"], env=env, capture_output=True, text=True, timeout=60)
        return done if done.returncode != 0 else None

    # the token works until ``soon``, then every command says it expired
    expired = wait_until(refused, 30, "a command with the expired token still succeeded")
    assert expired.returncode == 2 and "expired" in expired.stderr
    with sqlite3.connect(server.home / "gpuc.db") as db:
        assert db.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
