"""A reservation on the Slurm test cluster, end to end: ``gpuc up --backend slurm`` as a server
process, ``gpuc submit``, ``gpuc reserve create`` and ``gpuc why`` as commands, Slurm's clients as the
witness. The smaller twin of ``tests/service/test_reservations_live.py``: 4 A100 GPUs (one of the two
A100 nodes) reserved for project ``consortium`` while preemptible jobs of project ``demo`` hold both
nodes; the reservation takes the node whose job would lose the least work (the borrower's, started
last), and the other job runs on. At the start the borrower is signalled through Slurm, writes a
checkpoint in its working directory (its ``--chdir``) within its grace period and is requeued; the
consortium's job is started within one cycle of the start (the scheduler's interval plus
``STEP_SLACK_S`` for a step on the shared machine); after the reservation the borrower runs again as
a new Slurm job in the same directory, with ``GPUC_RESTART_COUNT=1``, and resumes from its
checkpoint. (Single-node jobs: a multi-node job runs its command through ``srun``.)"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.test_jobs_cli import GPUC, submitted_id
from tests.cli.test_slurm_service import ENDED, INTERVAL_S, Commons, commons, site
from tests.components import wait_until
from tests.job_release import Release, releases
from tests.service.test_reservations_live import borrower_script
from tests.slurm_cluster import job_info

__all__ = ["commons", "releases", "site"]

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(240)]

STEP_SLACK_S = 2.0  # a step's own time, Slurm's clients included
LEAD_S = 10.0
WINDOW_S = 20
GRACE_S = 30


def _submit(commons: Commons, workdir: Path, *argv: str) -> int:
    """``gpuc submit ARGV`` from ``workdir`` (a job's working directory is where it was submitted)."""
    done = subprocess.run(
        [*GPUC, "submit", *argv],
        env=commons.server.env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return submitted_id(done)


def _gpuc(commons: Commons, *args: str) -> str:
    done = commons.server.gpuc(*args)
    assert done.returncode == 0, (args, done.stderr)
    return done.stdout


def _stdout(commons: Commons, job_id: int) -> str:
    return commons.server.client().job_logs(job_id).text


def test_a_reservation_on_slurm_stops_a_borrower_gracefully_and_starts_its_job_on_time(
    commons: Commons, releases: Callable[[str], Release], tmp_path: Path
) -> None:
    commons.start()
    admin = commons.server.client()
    institution = admin.create_institution("Consortium", "research_institute", "capital")
    consortium = admin.create_project("consortium", institution.id)
    program = admin.create_program(
        name="a100-call", model="A100", capacity_gpus=8, unit_gpus=4, duration_days=30
    )
    demo = next(p for p in admin.list_projects() if p.name == "demo")
    for project_id in (demo.id, consortium.id):
        award = admin.create_award(project_id=project_id, program_id=program.id, gpu_hours_budget=100)
        admin.activate_award(award.id)
    work = tmp_path / "work"
    work.mkdir(mode=0o777)
    neighbour = _submit(  # first: by the reservation's start it has more work to lose than the borrower
        commons, work, "--project", "demo", "--gpus", "4", "--model", "A100", "--time", "1h",
        "--", "/bin/sh", "-c", releases("neighbour").shell,
    )  # fmt: skip
    _, (held,) = commons.running_in_slurm(neighbour)
    borrower = _submit(
        commons, work, "--project", "demo", "--gpus", "4", "--model", "A100", "--time", "1h",
        "--grace", f"{GRACE_S}s", "--", "/bin/sh", "-c", borrower_script(releases("never")),
    )  # fmt: skip
    first_ref, nodes = commons.running_in_slurm(borrower)
    assert nodes != {held}
    wait_until(lambda: "first run in" in _stdout(commons, borrower), 30, lambda: str(commons.job(borrower)))
    assert f"first run in {work}" in _stdout(commons, borrower)

    start = (datetime.now(UTC) + timedelta(seconds=LEAD_S)).replace(microsecond=0)
    made = json.loads(
        _gpuc(
            commons, "reserve", "create", "--project", "consortium", "--gpus", "4", "--model", "A100",
            "--start", start.isoformat(), "--duration", f"{WINDOW_S}s", "--json",
        )
    )  # fmt: skip
    end = start + timedelta(seconds=WINDOW_S)
    reserved = _submit(
        commons, work, "--project", "consortium", "--gpus", "4", "--model", "A100", "--time", "1m",
        "--", "echo", "reserved run",
    )  # fmt: skip
    when = start.strftime("%Y-%m-%d %H:%M UTC")
    waiting = f"reservation {made['id']} starts at {when}; 0 of 4 GPUs drained"
    wait_until(
        lambda: waiting in _gpuc(commons, "why", str(reserved)),
        LEAD_S,
        lambda: _gpuc(commons, "why", str(reserved)),
    )
    assert datetime.now(UTC) < start, "the setup took longer than the lead: raise LEAD_S"

    started = wait_until(
        lambda: commons.job(reserved)["started_at"], LEAD_S + 20, lambda: str(commons.job(reserved))
    )
    assert isinstance(started, datetime)
    assert start <= started <= start + timedelta(seconds=INTERVAL_S + STEP_SLACK_S), (start, started)
    assert commons.server.wait_job(reserved, ENDED, wait_s=60)["state"] == "finished"
    wait_until(
        lambda: "checkpoint written" in _stdout(commons, borrower),
        GRACE_S,
        lambda: _stdout(commons, borrower),
    )
    assert job_info(commons.site.env, first_ref)["JobState"] in ("CANCELLED", "COMPLETED")
    requeued = commons.job(borrower)
    assert (requeued["restarts"], requeued["state"] in ("pending", "running")) == (1, True), requeued

    done = commons.server.wait_job(borrower, ENDED, wait_s=WINDOW_S + 60)
    assert (done["state"], done["exit_code"]) == ("finished", 0), done
    second_start = done["started_at"]
    assert isinstance(second_start, datetime) and second_start >= end, (second_start, end)
    assert f"resumed from step-42 on restart 1 in {work}" in _stdout(commons, borrower)
    assert len(commons.slurm_jobs()[borrower]) == 2  # a second Slurm job for the rerun
    assert commons.job(neighbour)["restarts"] == 0  # the other node was never reserved
