"""Job routes through the real app: submit, idempotency, isolation, and bad input changing nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gpucommons.config import Settings
from gpucommons.service.app import create_app
from gpucommons.store import awards as award_repo
from gpucommons.store.base import count_rows
from gpucommons.store.calls import create_program
from gpucommons.store.jobs import JobRow
from gpucommons.store.tenancy import (
    create_institution,
    create_project,
    create_token,
    create_user,
    set_membership,
)


@dataclass
class Api:
    client: TestClient
    alice: dict[str, str]
    bob: dict[str, str]
    expiring: dict[str, str]
    clock: list[datetime]

    def count_jobs(self) -> int:
        with self.client.app.state.sessions() as s:  # type: ignore[attr-defined]
            return count_rows(s, JobRow)


@pytest.fixture
def api(tmp_path: Path, migrated_url: str) -> Iterator[Api]:
    clock = [datetime.now(UTC)]
    app = create_app(Settings(home=tmp_path, database_url=migrated_url), clock=lambda: clock[0])
    with app.state.sessions() as s:
        now = clock[0]
        inst = create_institution(s, "Uni", "university", "capital")
        acme = create_project(s, "acme", inst.id)
        other = create_project(s, "other", inst.id)
        alice = create_user(s, "alice")
        bob = create_user(s, "bob")
        set_membership(s, acme.id, alice.id, "member")
        set_membership(s, other.id, bob.id, "member")
        program = create_program(s, name="c", model="H100", capacity_gpus=16, duration_days=9)
        award = award_repo.create_award(
            s, award_repo.AwardTerms(acme.id, program.id, gpu_hours_budget=10.0, guaranteed_gpus=8), now
        )
        award_repo.activate_award(s, award.id, now)
        tokens = [create_token(s, u.id, now)[1] for u in (alice, bob)]
        expiring = create_token(s, alice.id, now, now + timedelta(minutes=5))[1]
        s.commit()
    with TestClient(app) as client:
        alice_h, bob_h, expiring_h = ({"Authorization": f"Bearer {t}"} for t in (*tokens, expiring))
        yield Api(client, alice_h, bob_h, expiring_h, clock)


def submit(api: Api, headers: dict[str, str], **fields: object) -> tuple[int, dict[str, object]]:
    body = {"project": "acme", "command": ["true"], "gpus": 1, **fields}
    response = api.client.post("/jobs", json=body, headers=headers)
    return response.status_code, response.json()


def test_submit_show_why_and_idempotent_retry(api: Api) -> None:
    status, job = submit(api, api.alice, gpus=2, time_limit="1:30:00", idempotency_key="k1")
    assert status == 201 and job["state"] == "pending" and job["time_limit_s"] == 5400
    status, again = submit(api, api.alice, gpus=2, idempotency_key="k1")
    assert (status, again["id"]) == (200, job["id"])
    assert api.count_jobs() == 1
    why = api.client.get(f"/jobs/{job['id']}/why", headers=api.alice).json()
    assert why["position"] == 1 and why["estimated_start_at"] is not None
    listed = api.client.get("/jobs", headers=api.alice).json()
    assert [j["id"] for j in listed] == [job["id"]]


@pytest.mark.parametrize(
    ("fields", "want_status", "want_text"),
    [
        ({"project": "nope"}, 404, "project 'nope' does not exist"),
        ({"gpus": 0}, 422, "at least 1"),
        ({"gpus": -3}, 422, "at least 1"),
        ({"gpus": 17}, 422, "can ever hold 17"),
        ({"gpus": 9, "models": ["A100"]}, 422, "can ever hold 9"),
        ({"time_limit": "soon"}, 422, "malformed time limit"),
        ({"time_limit": "0s"}, 422, "more than 0"),
        ({"models": ["TPU"]}, 422, "no pool has model"),
        ({"command": []}, 422, "exactly one of"),
    ],
)
def test_bad_input_is_refused_and_stores_nothing(
    api: Api, fields: dict[str, object], want_status: int, want_text: str
) -> None:
    status, body = submit(api, api.alice, **fields)
    assert status == want_status
    assert want_text in str(body["detail"])
    assert api.count_jobs() == 0


def test_expired_or_missing_token_is_401(api: Api) -> None:
    assert submit(api, api.expiring)[0] == 201
    api.clock[0] += timedelta(hours=1)
    status, body = submit(api, api.expiring)
    assert status == 401 and "expired" in str(body["detail"])
    assert api.client.post("/jobs", json={"project": "acme"}).status_code == 401
    assert api.count_jobs() == 1


def test_members_see_and_act_on_their_projects_only(api: Api) -> None:
    _, job = submit(api, api.alice)
    assert submit(api, api.bob) == (404, {"detail": "project 'acme' does not exist"})
    hidden = {"detail": f"job {job['id']} not found"}  # what a job that does not exist gets
    for response in (
        api.client.get(f"/jobs/{job['id']}", headers=api.bob),
        api.client.post(f"/jobs/{job['id']}/cancel", headers=api.bob),
        api.client.get(f"/jobs/{job['id']}/logs", headers=api.bob),
    ):
        assert (response.status_code, response.json()) == (404, hidden)
    assert api.client.get("/jobs", headers=api.bob).json() == []
    assert api.client.get("/usage", headers=api.bob).json() == []
    cancelled = api.client.post(f"/jobs/{job['id']}/cancel", headers=api.alice).json()
    assert cancelled["state"] == "cancelled"
    assert api.client.post(f"/jobs/{job['id']}/cancel", headers=api.alice).status_code == 200
