"""The API of graceful preemption (design note 0016, "In the live service"): a submission's grace period
and checkpoint interval, refused above the server's cap or malformed with nothing stored, and
``POST /jobs/{id}/checkpoint`` from the job's project or from the job's own run (its ``GPUC_JOB_TOKEN``),
which cannot reach any other job."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from gpucommons.store.jobs import JobRow, hash_run_token, new_run_token
from tests.service.conftest import World

JOB = {"project": "alpha", "command": ["true"], "gpus": 1}


def _submit(world: World, **fields: object) -> dict[str, object]:
    response = world.client("member").post("/jobs", json={**JOB, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


def _jobs(world: World) -> int:
    with world.app.state.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(JobRow)) or 0)


def _set(world: World, job_id: object, **values: object) -> None:
    with world.app.state.sessions() as s:
        s.execute(update(JobRow).where(JobRow.id == job_id).values(**values))
        s.commit()


def test_a_submission_states_its_grace_period_and_checkpoint_interval(world: World) -> None:
    job = _submit(world, grace_period="2m", checkpoint_interval="1h30m")
    assert (job["grace_s"], job["checkpoint_interval_s"]) == (120.0, 5400.0)
    assert (job["last_checkpoint_at"], job["signalled_at"]) == (None, None)
    plain = _submit(world)
    assert (plain["grace_s"], plain["checkpoint_interval_s"]) == (None, None)  # its class's default
    assert _submit(world, grace_period="0")["grace_s"] == 0.0  # killed at once when preempted


@pytest.mark.parametrize(
    ("fields", "want"),
    [
        ({"grace_period": "20m"}, "grace period '20m' is above the server's cap of 600 s"),
        ({"grace_period": "soon"}, "malformed grace period 'soon'"),
        ({"grace_period": "-5s"}, "malformed grace period"),
        ({"checkpoint_interval": "0"}, "a checkpoint interval must be more than 0"),
        ({"checkpoint_interval": "often"}, "malformed checkpoint interval"),
        ({"grace_period": "1m" * 20}, "at most 32 characters"),
    ],
)
def test_a_bad_grace_period_or_interval_is_refused_and_nothing_is_stored(
    world: World, fields: dict[str, object], want: str
) -> None:
    before = _jobs(world)
    for path, extra in (("/jobs", {}), ("/arrays", {"array": "0-3"})):
        response = world.client("member").post(path, json={**JOB, **fields, **extra})
        assert response.status_code == 422, response.text
        assert want in response.text
    assert _jobs(world) == before


def test_the_cap_is_the_servers(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = world.app.state.settings
    monkeypatch.setattr(world.app.state, "settings", settings.model_copy(update={"max_grace_s": 30.0}))
    response = world.client("member").post("/jobs", json={**JOB, "grace_period": "1m"})
    assert response.status_code == 422 and "cap of 30 s" in response.text
    assert _submit(world, grace_period="30s")["grace_s"] == 30.0


def test_a_member_reports_a_checkpoint_which_only_ever_moves_forward(world: World) -> None:
    job_id = _submit(world)["id"]
    member = world.client("member")
    first = member.post(f"/jobs/{job_id}/checkpoint")
    assert first.status_code == 200, first.text
    assert first.json()["last_checkpoint_at"] == world.clock.now.isoformat().replace("+00:00", "Z")
    world.clock.now -= timedelta(minutes=5)  # a report that arrives late, or a clock behind
    again = member.post(f"/jobs/{job_id}/checkpoint")
    assert again.json()["last_checkpoint_at"] == first.json()["last_checkpoint_at"]
    shown = member.get(f"/jobs/{job_id}").json()
    assert shown["last_checkpoint_at"] == first.json()["last_checkpoint_at"]


def test_no_one_else_reports_a_checkpoint_and_an_ended_job_takes_none(world: World) -> None:
    job_id = _submit(world)["id"]
    missing = world.client("admin").post("/jobs/999999/checkpoint")
    assert missing.status_code == 404
    for who in ("outsider", "reviewer"):  # another tenant, and a reviewer: as for no such job
        response = world.client(who).post(f"/jobs/{job_id}/checkpoint")
        assert response.status_code == 404
        assert response.json()["detail"] == f"job {job_id} not found"
    assert world.client(None).post(f"/jobs/{job_id}/checkpoint").status_code == 401
    _set(world, job_id, state="finished")
    ended = world.client("member").post(f"/jobs/{job_id}/checkpoint")
    assert ended.status_code == 409 and "has ended (finished)" in ended.text
    with world.app.state.sessions() as s:
        assert s.get(JobRow, job_id).last_checkpoint_at is None


def test_a_runs_own_token_reports_for_its_job_and_no_other(world: World) -> None:
    mine, other = _submit(world)["id"], _submit(world)["id"]
    token = new_run_token()
    _set(world, mine, state="running", run_token_sha256=hash_run_token(token))
    _set(world, other, state="running", run_token_sha256=hash_run_token(new_run_token()))
    run = world.client(None)
    bearer = {"Authorization": f"Bearer {token}"}
    ok = run.post(f"/jobs/{mine}/checkpoint", headers=bearer)
    assert ok.status_code == 200 and ok.json()["job_id"] == mine, ok.text
    for job_id in (other, 999999):  # another job, and one that does not exist, look alike
        refused = run.post(f"/jobs/{job_id}/checkpoint", headers=bearer)
        assert refused.status_code == 404 and refused.json()["detail"] == f"job {job_id} not found"
    forged = {"Authorization": f"Bearer {new_run_token()}"}
    assert run.post(f"/jobs/{mine}/checkpoint", headers=forged).status_code == 404
    assert run.get(f"/jobs/{mine}", headers=bearer).status_code == 401  # it is no API token
    _set(world, mine, state="pending")  # preempted, in its grace period: it still reports
    assert run.post(f"/jobs/{mine}/checkpoint", headers=bearer).status_code == 200
    _set(world, mine, run_token_sha256=hash_run_token(new_run_token()))  # its next run started
    assert run.post(f"/jobs/{mine}/checkpoint", headers=bearer).status_code == 404
    with world.app.state.sessions() as s:
        assert s.get(JobRow, other).last_checkpoint_at is None
