"""One large job array through the whole service: the app, the live engine on its thread as ``gpuc up``
runs it, and the local backend starting real processes. One ``POST /arrays`` stores every task; every
task runs once, with its own ``GPUC_ARRAY_TASK_ID`` and ``SLURM_ARRAY_TASK_ID``, and finishes with
exit code 0; and never are more than ``%N`` of them alive at once.

"At once" is judged from evidence, not from the scheduler's counts: the tasks' own clocks, written to
a named pipe while the test releases them in waves that fill the limit (``tests/array_witness.py``),
and the times the commons recorded (``started_at`` from just before each process started,
``ended_at`` from after it ended).

The array is 1,000 tasks ``%64``, where ten thousand are the goal: each task costs the control plane
a wrapper process and its database writes, and ten thousand do not fit this suite's time on two cores
(``benchmarks/array_throughput.py`` runs them and prints the rate)."""

from __future__ import annotations

import shutil
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from gpucommons.config import Settings
from gpucommons.service.app import create_app
from gpucommons.service.scheduler import start_in_background
from gpucommons.store import awards as award_repo
from gpucommons.store.base import upgrade
from gpucommons.store.calls import create_program
from gpucommons.store.tenancy import (
    create_institution,
    create_project,
    create_token,
    create_user,
    set_membership,
)
from tests.array_witness import array_pipes, run_to_completion
from tests.components import wait_until
from tests.conftest import most_overlapping

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TASKS = 1_000
LIMIT = 64
RUN_S = 180.0  # the most the whole array may take before the test fails
CLUSTER_TOML = """
name = "wide"

[[sites]]
name = "local"
region = "non-capital"

[[pools]]
name = "h100"
site = "local"
model = "H100"
nodes = 10
gpus_per_node = 8
"""


@dataclass
class Service:
    client: TestClient
    settings: Settings


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """The service on SQLite (``gpuc up``'s default) over 80 GPUs, one project with an award for all of
    them, and its member's client; the scheduler's thread stopped and the jobs' directories removed
    afterwards."""
    cluster = tmp_path / "wide.toml"
    cluster.write_text(CLUSTER_TOML)
    url = f"sqlite:///{tmp_path / 'gpuc.db'}"
    upgrade(url)
    settings = Settings(
        home=tmp_path / "home", database_url=url, cluster=str(cluster), scheduler_interval_s=0.05
    )
    app = create_app(settings, migrate=False)
    now = datetime.now(UTC)
    with app.state.sessions() as s:
        project = create_project(s, "sweep", create_institution(s, "Acme AI", "startup", "non_capital").id)
        user = create_user(s, "alice")
        set_membership(s, project.id, user.id, "member")
        token = create_token(s, user.id, now)[1]
        program = create_program(
            s, name="call", model="H100", capacity_gpus=80, unit_gpus=8, duration_days=30
        )
        terms = award_repo.AwardTerms(project.id, program.id, gpu_hours_budget=1000.0, guaranteed_gpus=80)
        award_repo.activate_award(s, award_repo.create_award(s, terms, now).id, now)
        s.commit()
    stop = start_in_background(app, settings)
    client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    yield Service(client, settings)
    client.close()
    stop.set()
    app.state.scheduler_wake.set()
    for thread in threading.enumerate():
        if thread.name == "gpuc-scheduler":
            thread.join(30)
    app.state.engine.dispose()
    work_root = settings.home / "backend" / "local" / "work_root"
    if work_root.exists():
        shutil.rmtree(work_root.read_text().strip(), ignore_errors=True)


def test_an_array_of_a_thousand_tasks_runs_to_completion_never_past_its_limit(service: Service) -> None:
    with array_pipes() as pipes:
        body = {"project": "sweep", "command": pipes.task_command("GPUC_JOB_ID"), "time_limit": "10m"}
        response = service.client.post("/arrays", json={**body, "array": f"0-{TASKS - 1}%{LIMIT}"})
        assert response.status_code == 201, response.text
        array_id = response.json()["id"]
        witness = run_to_completion(pipes, TASKS, LIMIT, RUN_S)

    def states() -> dict[str, int]:
        found: dict[str, int] = service.client.get(f"/arrays/{array_id}").json()["states"]
        return found

    wait_until(lambda: states() == {"finished": TASKS}, 30, lambda: f"the array's tasks: {states()}")
    tasks = service.client.get("/jobs", params={"array": array_id, "limit": TASKS}).json()
    assert len(tasks) == TASKS and not witness.repeated, witness.repeated[:5]  # each ran once
    for task in tasks:
        assert (task["state"], task["exit_code"]) == ("finished", 0), task
        index = task["array_task_id"]
        assert witness.starts[str(task["id"])][:2] == (index, index)  # its own GPUC_ and SLURM_ARRAY_TASK_ID
    assert sorted(t["array_task_id"] for t in tasks) == list(range(TASKS))
    assert most_overlapping(witness.spans()) == LIMIT  # by the tasks' own clocks: reached, never passed
    recorded = [
        (
            datetime.fromisoformat(t["started_at"]).timestamp(),
            datetime.fromisoformat(t["ended_at"]).timestamp(),
        )
        for t in tasks
    ]
    assert most_overlapping(recorded) <= LIMIT  # and by the times the commons recorded
