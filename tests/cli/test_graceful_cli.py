"""Graceful preemption through the whole live service on the local backend (design note 0016, "In the
live service"): ``gpuc up`` as a real server process on SQLite or PostgreSQL, ``gpuc submit --grace``,
jobs as real processes.

A high-priority job preempts a running one. The victim gets SIGTERM; in its grace period it writes
its checkpoint in its own directory and reports it through the API with its run's own token (which
another job's checkpoint refuses); it exits and is requeued. Meanwhile the scheduler goes on: another
job starts elsewhere. The job that preempted it starts only once it has gone. Its next run sees
``GPUC_RESTART_COUNT=1``, finds the checkpoint in the same directory and resumes from it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli.test_jobs_cli import Server, free_port, submitted_id
from tests.components import wait_until
from tests.db_fixtures import db_url
from tests.job_release import Release, releases

__all__ = ["db_url", "releases"]

pytestmark = pytest.mark.timeout(180)

REPORT = """\
import os, sys, urllib.error, urllib.request
def post(job_id):
    url = f"{sys.argv[1]}/jobs/{job_id}/checkpoint"
    token = os.environ["GPUC_JOB_TOKEN"]
    request = urllib.request.Request(url, method="POST", headers={"Authorization": "Bearer " + token})
    try:
        return urllib.request.urlopen(request, timeout=10).status
    except urllib.error.HTTPError as exc:
        return exc.code
print("reported", post(os.environ["GPUC_JOB_ID"]), "other", post(sys.argv[2]), flush=True)
"""

VICTIM = """\
echo "run $GPUC_RESTART_COUNT"
if [ "$GPUC_RESTART_COUNT" = 1 ]; then echo "resumed from $(cat "$HOME/state")"; exit 0; fi
trap '{save}; echo step-41 > "$HOME/state"; /usr/bin/python3 {report} {url} {other}; \\
echo "exit $(date +%s.%N)"; exit 0' TERM
echo ready
while :; do sleep 0.05; done
"""


@pytest.fixture
def server(tmp_path: Path, db_url: str) -> Iterator[Server]:
    extra = {} if db_url.startswith("sqlite") else {"GPUC_DATABASE_URL": db_url}
    srv = Server(tmp_path / "home", free_port(), extra_env=extra)
    yield srv
    srv.stop()


def _log(server: Server, job_id: int) -> str:
    return server.client().job_logs(job_id, "stdout").text


def _time_after(text: str, word: str) -> float:
    return float(text.split(f"{word} ", 1)[1].split()[0])


def _submit(server: Server, *args: str) -> int:
    return submitted_id(server.gpuc("submit", "--model", "H100", *args))


def test_a_victim_checkpoints_reports_and_resumes_while_the_service_goes_on(
    server: Server, releases: Callable[[str], Release]
) -> None:
    server.start()
    save, hold, other_runs = releases("save"), releases("hold"), releases("other")
    report = save.path.parent / "report.py"  # where every job uid may read it
    report.write_text(REPORT)
    report.chmod(0o644)
    filler = _submit(server, "--gpus", "4", "--gpus-per-node", "4", "--priority", "high", "--", *hold.command)
    script = VICTIM.format(
        save=save.shell, report=report, url=f"http://127.0.0.1:{server.port}", other=filler
    )
    victim = _submit(
        server, "--gpus", "8", "--grace", "2m", "--checkpoint-every", "10m", "--", "sh", "-c", script
    )
    wait_until(lambda: "ready" in _log(server, victim), 60, "the victim never started", poll_s=0.2)
    shown = server.client().get_job(victim)
    assert (shown.grace_s, shown.checkpoint_interval_s) == (120.0, 600.0)

    high = _submit(server, "--gpus", "8", "--priority", "high", "--", "sh", "-c",
                   f'echo "start $(date +%s.%N)"; {hold.shell}')  # fmt: skip
    server.wait_job(victim, ("pending",))
    other = _submit(
        server, "--gpus", "4", "--gpus-per-node", "4", "--", "sh", "-c", f"echo started; {other_runs.shell}"
    )
    wait_until(
        lambda: "started" in _log(server, other), 60, "nothing started during the grace period", poll_s=0.2
    )
    assert "exit" not in _log(server, victim)  # still in its grace period, writing its checkpoint
    assert "start" not in _log(server, high) and server.client().get_job(high).backend_ref.startswith(
        "pending:"
    )

    save.release()
    wait_until(lambda: "start " in _log(server, high), 60, "the preempting job never started", poll_s=0.2)
    log = _log(server, victim)
    assert "reported 200 other 404" in log, log  # its own run's token, for its own job only
    assert _time_after(_log(server, high), "start") >= _time_after(log, "exit")
    job = server.client().get_job(victim)
    assert job.restarts == 1 and job.signalled_at is not None and job.last_checkpoint_at is not None
    assert job.signalled_at <= job.last_checkpoint_at
    assert server.client().get_job(filler).last_checkpoint_at is None

    hold.release()
    other_runs.release()
    done = server.wait_job(victim, ("finished", "failed", "cancelled", "lost"), wait_s=90)
    assert (done["state"], done["exit_code"]) == ("finished", 0)
    log = _log(server, victim)
    assert "run 0" in log and "run 1" in log and "resumed from step-41" in log, log
