"""The must-be-true test of job isolation, end to end: ``gpuc up`` as a real server process with the local
backend, a member's job that goes looking for the commons' secrets, and another tenant's job beside it.

The member's job runs ``env``, reads ``$GPUC_HOME/credentials.json``, lists ``~/.gpuc`` and, by absolute
path, the credentials, the database and the other job's log and files. Its output must hold no token, no
variable of the server's environment (their names and values are checked) and nothing of the commons'
files. The absolute-path reads are the uid part: only a job under a uid of its own can be refused them,
so they are made only when the server runs as root (CI does); the rest holds for any server user.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gpucommons.backends.isolation import DEFAULT_JOB_UIDS, UidRange
from gpucommons.cli.credentials import load_credentials
from gpucommons.client import GpucClient
from tests.components import wait_until
from tests.job_release import Release, releases

__all__ = ["releases"]

pytestmark = pytest.mark.timeout(120)
GPUC = str(Path(sys.executable).parent / "gpuc")
ROOT = os.geteuid() == 0
JOB_VARS = {
    "PATH", "LANG", "HOME", "TMPDIR", "USER", "LOGNAME", "CUDA_VISIBLE_DEVICES", "GPUC_JOB_ID",
    "GPUC_NODE", "GPUC_GPUS", "GPUC_GPU_MODEL", "GPUC_ACCOUNT", "GPUC_LAUNCH_ID",
    "GPUC_RESTART_COUNT", "GPUC_CHECKPOINT_FILE", "GPUC_JOB_TOKEN",
}  # fmt: skip
SHELL_SET = {"PWD", "OLDPWD", "SHLVL", "_"}
ENDED = ("finished", "failed", "cancelled", "timeout", "lost")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Commons:
    home: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]

    def admin(self) -> GpucClient:
        creds = load_credentials(self.home)
        assert creds is not None
        return GpucClient(creds.url, creds.token)

    def job_dir(self, job_id: int) -> Path | None:
        """The job's own directory, once the backend has made its work root."""
        record = self.home / "backend" / "local" / "work_root"
        return Path(record.read_text().strip()) / str(job_id) if record.exists() else None


@pytest.fixture
def commons(tmp_path: Path, db_url: str) -> Iterator[Commons]:
    """``gpuc up`` with a server environment full of things a job must not see."""
    scratch = Path(tempfile.mkdtemp(prefix="gpuc-test-tmp-"))  # the server's TMPDIR: the work root's parent
    scratch.chmod(0o755)
    home = scratch / "home"  # reachable by path, like ~/.gpuc in an ordinary home: only its mode guards it
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    port = _free_port()
    url = f"sqlite:///{home / 'gpuc.db'}" if db_url.startswith("sqlite") else db_url
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUC_")}
    env.update(
        GPUC_HOME=str(home),
        GPUC_DATABASE_URL=url,
        GPUC_SCHEDULER_INTERVAL_S="0.3",
        GPUC_TOKEN=f"gpuc_server_env_{uuid.uuid4().hex}",
        SERVER_ONLY_SECRET=f"server-secret-{uuid.uuid4().hex}",
        TMPDIR=str(scratch),
    )
    log = open(tmp_path / "server.log", "ab")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [GPUC, "up", "--port", str(port)], env=env, stdout=log, stderr=log, start_new_session=True
    )
    try:

        def healthy() -> bool:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 60, "the server never answered", poll_s=0.2)
        said = f"dashboard: http://127.0.0.1:{port}/ui"
        wait_until(
            lambda: said in (tmp_path / "server.log").read_text(), 30, "no dashboard address", poll_s=0.2
        )
        yield Commons(home, env, proc)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        log.close()
        for meta in (home / "backend" / "local").glob("*/meta.json"):
            ref = str(json.loads(meta.read_text()).get("ref", ""))
            with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
                os.killpg(int(ref.split(":")[0]), signal.SIGKILL)
        shutil.rmtree(scratch, ignore_errors=True)


def _output(client: GpucClient, job_id: int) -> str:
    return client.job_logs(job_id, "stdout").text + client.job_logs(job_id, "stderr").text


def test_a_members_job_finds_no_token_no_server_variable_and_no_file_of_the_commons(
    commons: Commons, releases: Callable[[str], Release]
) -> None:
    admin = commons.admin()
    creds = load_credentials(commons.home)
    assert creds is not None
    admin_token = creds.token
    project = next(p for p in admin.list_projects() if p.name == "demo")
    mallory = admin.create_user("mallory")
    admin.add_member(project.id, mallory.id, "member")
    mallory_token = admin.create_token(user_id=mallory.id).token
    member = GpucClient(creds.url, mallory_token)

    marker = f"other-tenant-log-{uuid.uuid4().hex}"
    forever = releases("never").path  # the other tenant's job runs until the test ends
    other_script = f"echo {marker}; echo other-tenant-file > $HOME/private; exec cat {forever}"
    other = admin.submit_job(project="demo", command=["sh", "-c", other_script], gpus=1, time_limit="5m")

    def started() -> bool:
        path = commons.job_dir(other.id)
        return path is not None and (path / "private").exists()

    wait_until(started, 60, "the other tenant's job never started", poll_s=0.2)
    other_dir = commons.job_dir(other.id)
    assert other_dir is not None

    probe = [
        "echo uid=$(id -u)",
        "env",
        "echo ---",
        'cat "$GPUC_HOME/credentials.json"',
        "ls -la ~/.gpuc",
        "cat ~/.gpuc/credentials.json",
    ]
    if ROOT:  # the uid part: what only a uid of its own keeps a job from
        home = commons.home
        probe += [
            f"cat {home}/credentials.json",
            f"head -c 64 {home}/gpuc.db",
            f"ls -la {home}",
            f"cat {home}/jobs/{other.id}/stdout.log",
            f"cat {other_dir}/private",
            f"ls {other_dir.parent}",
        ]
    job = member.submit_job(project="demo", command=["sh", "-c", "; ".join(probe)], gpus=1, time_limit="5m")
    wait_until(lambda: member.get_job(job.id).state in ENDED, 60, "the member's job never ended", poll_s=0.2)
    out = _output(member, job.id)
    assert stat.S_IMODE(commons.home.stat().st_mode) == 0o700  # gpuc up made it private

    env_part = out.split("---\n", 1)[0]
    job_env = dict(line.split("=", 1) for line in env_part.splitlines()[1:] if "=" in line)
    assert set(job_env) <= JOB_VARS | SHELL_SET, sorted(set(job_env) - JOB_VARS - SHELL_SET)
    server_only = {k for k in commons.env if k not in JOB_VARS | SHELL_SET}
    assert {"GPUC_HOME", "GPUC_TOKEN", "GPUC_DATABASE_URL", "SERVER_ONLY_SECRET"} <= server_only
    assert not server_only & set(job_env)
    for name in server_only:
        if len(commons.env[name]) >= 8:  # a value long enough to be told apart from chance
            assert commons.env[name] not in env_part, f"the job's environment holds the server's {name}"
    secrets = ("GPUC_TOKEN", "GPUC_DATABASE_URL", "SERVER_ONLY_SECRET")
    for secret in (admin_token, mallory_token, *(commons.env[name] for name in secrets)):
        assert secret not in out  # nowhere: not in its environment, nor in any file it could read
    assert "No such file" in out  # ~/.gpuc is the job's own home, which has none
    if ROOT:
        uid = int(out.split()[0].removeprefix("uid="))
        assert uid in UidRange.parse(DEFAULT_JOB_UIDS)
        assert marker not in out and "other-tenant-file" not in out and "SQLite format" not in out
        assert out.count("Permission denied") >= 6, out
    admin.cancel_job(other.id)
    wait_until(
        lambda: admin.get_job(other.id).state in ENDED, 60, "the other tenant's job never stopped", poll_s=0.2
    )
    assert marker in _output(admin, other.id)  # its own log is intact and readable through the API


@pytest.mark.parametrize("uids", ["10-5", "abc", "0-9"])
def test_a_bad_job_uid_range_is_one_line_and_stores_nothing(tmp_path: Path, uids: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUC_")}
    env.update(GPUC_HOME=str(tmp_path / "home"), GPUC_JOB_UIDS=uids)
    result = subprocess.run(
        [GPUC, "up", "--port", str(_free_port())], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "job_uids" in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "home").exists()
