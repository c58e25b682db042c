"""Graceful preemption on a real Slurm cluster, end to end (design note 0016, "In the live service"):
``gpuc up --backend slurm``, a high-priority job preempting a running one, Slurm's own clients as the
witness. The victim gets Slurm's signal, writes its checkpoint in its ``--chdir`` within its grace
period and exits; it is charged up to the signal and requeued; the job that preempted it runs only once
Slurm has freed the node; the victim's next run sees ``GPUC_RESTART_COUNT=1`` in the same directory and
resumes from the checkpoint."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gpucommons.backends.slurm import SlurmBackend
from gpucommons.backends.slurm_submit import SlurmConfig
from tests.backends.test_slurm_live import TERMINAL, collect, config, kinds, make_spec
from tests.cli.test_jobs_cli import GPUC, submitted_id
from tests.cli.test_slurm_service import ENDED, Commons, commons, site
from tests.components import wait_until
from tests.job_release import Release, releases
from tests.slurm_cluster import job_info

__all__ = ["commons", "config", "releases", "site"]

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(240)]

VICTIM = """\
echo "run $GPUC_RESTART_COUNT"
if [ "$GPUC_RESTART_COUNT" = 1 ]; then echo "resumed from $(cat state)"; exit 0; fi
trap '{save}; echo step-41 > state; touch "$GPUC_CHECKPOINT_FILE"; exit 0' TERM
echo ready
while :; do sleep 0.05; done
"""


def _submit(commons: Commons, workdir: Path, script: str, *options: str) -> int:
    """``gpuc submit`` from ``workdir``, which becomes the job's ``--chdir``."""
    argv = [*GPUC, "submit", "--gpus", "8", "--model", "H100", *options, "--", "sh", "-c", script]
    done = subprocess.run(
        argv, env=commons.server.env, cwd=workdir, capture_output=True, text=True, timeout=60
    )
    return submitted_id(done)


def _log(commons: Commons, job_id: int) -> str:
    return commons.server.gpuc("logs", str(job_id)).stdout


def _epoch(value: str) -> float:
    return float(value)  # Slurm's clients answer in epoch seconds here (SLURM_TIME_FORMAT=%s)


def _stored_s(value: str) -> float:
    return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()


def test_a_victim_checkpoints_in_its_grace_period_and_resumes_in_the_same_directory(
    commons: Commons, releases: Callable[[str], Release], tmp_path: Path
) -> None:
    commons.start()
    workdir = tmp_path / "work"
    workdir.mkdir()
    save, hold = releases("save"), releases("hold")
    fillers = [_submit(commons, workdir, hold.shell, "--priority", "high") for _ in range(3)]
    victim = _submit(commons, workdir, VICTIM.format(save=save.shell), "--grace", "90s")
    old_ref, _ = commons.running_in_slurm(victim)
    for job_id in fillers:
        commons.running_in_slurm(job_id)
    wait_until(lambda: "ready" in _log(commons, victim), 30, "the victim never got ready", poll_s=0.2)

    high = _submit(commons, workdir, f"echo high; {hold.shell}", "--priority", "high")
    wait_until(lambda: commons.job(victim)["restarts"] == 1, 30, "the victim was not preempted", poll_s=0.2)
    assert job_info(commons.site.env, old_ref)["JobState"] == "RUNNING"  # in its grace period
    assert commons.job(victim)["signalled_at"] is not None and commons.job(victim)["state"] == "pending"

    commons.wait_steps(6)  # the scheduler goes on meanwhile; the grace period outlasts three seconds
    save.release()
    high_ref, _ = commons.running_in_slurm(high, wait_s=60)
    old, new = job_info(commons.site.env, old_ref), job_info(commons.site.env, high_ref)
    assert old["JobState"] == "COMPLETED"  # it checkpointed and exited on Slurm's signal
    assert _epoch(new["StartTime"]) >= _epoch(old["EndTime"])  # never two jobs on one node's GPUs
    assert (workdir / "state").read_text() == "step-41\n"
    wait_until(lambda: commons.job(victim)["last_checkpoint_at"] is not None, 30, "no checkpoint seen")
    with sqlite3.connect(commons.server.home / "gpuc.db") as db:
        (ended, signalled) = db.execute(
            "SELECT u.ended_at, j.signalled_at FROM usage u JOIN jobs j ON j.id = u.job_id WHERE j.id = ?",
            (victim,),
        ).fetchone()
    charged_to, signalled_s = _stored_s(ended), _stored_s(signalled)
    assert signalled_s <= charged_to < signalled_s + 2.0  # up to the signal
    assert charged_to < _epoch(old["EndTime"]) - 1.0  # not its grace period

    hold.release()
    job = commons.server.wait_job(victim, ENDED, wait_s=90)
    assert (job["state"], job["exit_code"], job["restarts"]) == ("finished", 0, 1)
    log = _log(commons, victim)
    assert "run 0" in log and "run 1" in log and "resumed from step-41" in log, log
    refs = commons.slurm_jobs()[victim]
    assert len(refs) == 2 and {job_info(commons.site.env, r)["WorkDir"] for r in refs} == {str(workdir)}


def test_a_run_that_ignores_slurms_signal_is_killed_when_its_grace_period_ends(
    config: SlurmConfig, tmp_path: Path, releases: Callable[[str], Release]
) -> None:
    backend = SlurmBackend(config)
    script = "trap 'echo term' TERM; echo ready; while :; do sleep 0.05; done"
    spec = make_spec(tmp_path, 301, ["sh", "-c", script], "a100-2")
    ref = backend.launch(spec)
    collect(backend, lambda ev: "started" in kinds(ev, 301))
    wait_until(lambda: spec.stdout_path.exists() and "ready" in spec.stdout_path.read_text(), 30, "not ready")
    backend.preempt(301, ref, 3.0)
    deadline = backend.next_deadline_s()
    assert deadline is not None
    events = collect(backend, lambda ev: bool(set(kinds(ev, 301)) & TERMINAL))
    (end,) = [e for e in events if e.job_id == 301 and e.kind in TERMINAL]
    assert end.signalled_s is not None and deadline == end.signalled_s + 3.0
    # Slurm's end time is whole seconds; the kill comes with the first poll after the deadline
    assert end.signalled_s + 3.0 - 1.0 <= end.at_s <= end.signalled_s + 3.0 + 2.0
    assert "term" in spec.stdout_path.read_text()  # the signal reached the job's own command
    assert backend.next_deadline_s() is None


def test_a_run_slurm_had_not_started_is_cancelled_outright(
    config: SlurmConfig, tmp_path: Path, releases: Callable[[str], Release]
) -> None:
    backend = SlurmBackend(config)
    hold = releases("hold")
    backend.launch(make_spec(tmp_path, 302, hold.command, "a100-1", gpus=4))
    collect(backend, lambda ev: "started" in kinds(ev, 302))
    waiting = backend.launch(make_spec(tmp_path, 303, ["true"], "a100-1", gpus=4))  # Slurm keeps it pending
    backend.preempt(303, waiting, 60.0)
    assert backend.next_deadline_s() is None  # nothing to wait for
    events = collect(backend, lambda ev: bool(set(kinds(ev, 303)) & TERMINAL))
    assert [e.kind for e in events if e.job_id == 303 and e.kind in TERMINAL] == ["cancelled"]
    hold.release()
    collect(backend, lambda ev: "finished" in kinds(ev, 302))
