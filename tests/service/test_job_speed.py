"""On a speed-aware cluster the job record and ``why`` name the model a running job holds and its speed
against the reference model (design note 0009); on a speed-blind one only the model."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from gpucommons.clusterfile import load_cluster
from gpucommons.store.jobs import AllocationRow, JobRow
from tests.service.conftest import World


def _running_on(world: World, node: str, gpus: int = 2) -> int:
    made = world.client("pi").post("/jobs", json={"project": "alpha", "command": ["true"], "gpus": gpus})
    assert made.status_code == 201, made.text
    job_id = int(made.json()["id"])
    index = next(n.index for n in world.app.state.cluster.nodes if n.name == node)
    with world.app.state.sessions() as s:  # what a start records: the job running on its GPUs
        s.execute(update(JobRow).where(JobRow.id == job_id).values(state="running", backend_ref="1:1"))
        s.add_all(
            AllocationRow(job_id=job_id, node_index=index, node_name=node, gpu_index=g) for g in range(gpus)
        )
        s.commit()
    return job_id


@pytest.mark.parametrize(("node", "model", "speed"), [("k80-1", "K80", 0.15), ("a100-2", "A100", 1.0)])
def test_a_running_job_shows_its_model_and_speed(world: World, node: str, model: str, speed: float) -> None:
    world.app.state.cluster = load_cluster("hetero-3gen")  # the server's cluster file
    job_id = _running_on(world, node)
    member = world.client("member")
    job = member.get(f"/jobs/{job_id}").json()
    assert (job["model"], job["speed"], job["reference_model"]) == (model, pytest.approx(speed), "A100")
    why = member.get(f"/jobs/{job_id}/why").json()
    assert (why["state"], why["model"], why["speed"], why["reference_model"]) == (
        "running",
        model,
        pytest.approx(speed),
        "A100",
    )


def test_on_a_speed_blind_cluster_only_the_model_is_shown(world: World) -> None:
    job_id = _running_on(world, "a100-1")  # the demo cluster, which states no speeds
    job = world.client("member").get(f"/jobs/{job_id}").json()
    assert (job["model"], job["speed"], job["reference_model"]) == ("A100", None, "")
    pending = world.client("pi").post("/jobs", json={"project": "alpha", "command": ["true"]}).json()
    assert (pending["model"], pending["speed"]) == ("", None)


def test_a_jobs_class_and_a_programs_budget_unit_are_stored_and_shown(world: World) -> None:
    made = world.client("pi").post(
        "/jobs", json={"project": "alpha", "command": ["true"], "job_class": "inference"}
    )
    assert made.status_code == 201, made.text
    assert world.client("member").get(f"/jobs/{made.json()['id']}").json()["job_class"] == "inference"
    body = {"name": "ref call", "model": "H100", "capacity_gpus": 8, "unit": "reference-hours"}
    program = world.client("admin").post("/programs", json=body)
    assert program.status_code == 201, program.text
    assert world.client("admin").get(f"/programs/{program.json()['id']}").json()["unit"] == "reference-hours"
