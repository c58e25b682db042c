"""A job array on a real Slurm cluster: ``gpuc submit --array 0-199%8`` on the Slurm backend. Each task
stays a gpucommons job, placed by our policy and submitted to Slurm as its own ``gpuc-<job id>`` when
placed. All 200 complete, each reading its index from ``GPUC_ARRAY_TASK_ID`` and, as a script
written for Slurm does, ``SLURM_ARRAY_TASK_ID``; and never are more than 8 alive at once, by the
tasks' own clocks while the test releases them in waves that fill the limit
(``tests/array_witness.py``). Slurm's records (whole seconds) say each ran as one completed job."""

from __future__ import annotations

import pytest

from tests.array_witness import array_pipes, run_to_completion
from tests.cli.test_slurm_service import Commons, commons, site
from tests.components import wait_until
from tests.conftest import most_overlapping
from tests.slurm_cluster import job_info

__all__ = ["commons", "site"]

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(180)]
TASKS = 200
LIMIT = 8
INTERVAL_S = "0.1"  # the scheduler's step: each wave's ends are seen at the next one


def test_an_array_runs_as_placed_slurm_jobs_never_more_than_its_limit(commons: Commons) -> None:
    commons.server.extra_env["GPUC_SCHEDULER_INTERVAL_S"] = INTERVAL_S
    commons.start()
    client = commons.server.client()
    with array_pipes() as pipes:
        spec = f"0-{TASKS - 1}%{LIMIT}"
        done = commons.server.gpuc("submit", "--array", spec, "--", *pipes.task_command("SLURM_JOB_ID"))
        assert done.returncode == 0, done.stderr
        array_id = int(done.stdout.split()[2])
        witness = run_to_completion(pipes, TASKS, LIMIT, 120)
    wait_until(
        lambda: client.get_array(array_id).states == {"finished": TASKS},
        30,
        lambda: f"array {array_id}: {client.get_array(array_id).states}",
        poll_s=0.2,
    )
    tasks = client.list_jobs(["finished"], array=array_id, limit=TASKS)
    assert sorted(t.array_task_id for t in tasks if t.array_task_id is not None) == list(range(TASKS))
    assert not witness.repeated, witness.repeated[:5]  # each ran once
    for t in tasks:
        assert witness.starts[t.backend_ref][:2] == (t.array_task_id, t.array_task_id)  # its own indexes
    assert most_overlapping(witness.spans()) == LIMIT  # by the tasks' clocks: reached, never passed
    for t in tasks[:: TASKS // 10]:  # Slurm's own record of a sample
        info = job_info(commons.site.env, t.backend_ref)
        assert (info["JobName"], info["JobState"]) == (f"gpuc-{t.id}", "COMPLETED")
    assert commons.slurm_jobs() == {t.id: [t.backend_ref] for t in tasks}  # one Slurm job per task
