"""A job array on a real Slurm cluster: ``gpuc submit --array 0-5%2`` on the Slurm backend. Each task
stays a gpucommons job, placed by our policy and submitted to Slurm as its own ``gpuc-<job id>`` when
placed; Slurm's own records are the witness that never more than 2 ran at once, and each task reads
its index from ``GPUC_ARRAY_TASK_ID`` and, as a script written for Slurm does, ``SLURM_ARRAY_TASK_ID``."""

from __future__ import annotations

import pytest

from tests.cli.test_slurm_service import Commons, commons, site
from tests.components import wait_until
from tests.conftest import most_overlapping
from tests.slurm_cluster import job_info

__all__ = ["commons", "site"]

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(180)]
TASK = 'echo "$GPUC_ARRAY_TASK_ID $SLURM_ARRAY_TASK_ID $SLURM_JOB_ID $(date +%s.%N)"; sleep 3; date +%s.%N'


def test_an_array_runs_as_placed_slurm_jobs_never_more_than_its_limit(commons: Commons) -> None:
    commons.start()
    done = commons.server.gpuc("submit", "--array", "0-5%2", "--gpus", "2", "--", "sh", "-c", TASK)
    assert done.returncode == 0, done.stderr
    array_id = int(done.stdout.split()[2])
    client = commons.server.client()
    wait_until(
        lambda: client.get_array(array_id).states == {"finished": 6},
        150,
        lambda: f"array {array_id}: {client.get_array(array_id).states}",
        poll_s=0.5,
    )
    tasks = client.list_jobs(["finished"], array=array_id)
    assert sorted(t.array_task_id for t in tasks if t.array_task_id is not None) == list(range(6))
    own, slurms = [], []
    for t in tasks:
        first, last = (commons.server.home / "jobs" / str(t.id) / "stdout.log").read_text().splitlines()
        index, slurm_index, slurm_job, start = first.split()
        assert (index, slurm_index, slurm_job) == (str(t.array_task_id), str(t.array_task_id), t.backend_ref)
        own.append((float(start), float(last)))
        info = job_info(commons.site.env, t.backend_ref)
        assert (info["JobName"], info["JobState"]) == (f"gpuc-{t.id}", "COMPLETED")
        slurms.append((float(info["StartTime"]), float(info["EndTime"])))
    assert most_overlapping(own) == 2  # by the tasks' clocks: the limit reached, never passed
    assert most_overlapping(slurms) <= 2  # and by Slurm's own record
    assert commons.slurm_jobs() == {t.id: [t.backend_ref] for t in tasks}  # one Slurm job per task
