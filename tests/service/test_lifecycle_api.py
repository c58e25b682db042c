"""The lifecycle over HTTP: a step run by an admin at a given time, notices each caller may see, a
program's reclaim rule (bad rules refused with 422 and nothing changed), users' e-mail addresses, and
a step refused while another server holds the lifecycle lease."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from gpucommons.store.base import count_rows
from gpucommons.store.calls import ProgramRow
from gpucommons.store.lease import LIFECYCLE_LEASE_ID, acquire_lease
from gpucommons.store.notices import NoticeRow
from gpucommons.store.tenancy import UserRow
from tests.service.conftest import World


def _program(world: World) -> int:
    response = world.client("admin").post(
        "/programs", json={"name": "call", "model": "H100", "capacity_gpus": 16, "duration_days": 60}
    )
    assert response.status_code == 201, response.text
    program_id: int = response.json()["id"]
    return program_id


def _award(world: World, program_id: int, project: str, gpus: int) -> int:
    body = {"project_id": world.ids[project], "program_id": program_id, "guaranteed_gpus": gpus}
    response = world.client("admin").post("/awards", json=body)
    assert response.status_code == 201, response.text
    award_id: int = response.json()["id"]
    assert world.client("admin").post(f"/awards/{award_id}/activate").status_code == 200
    return award_id


def test_an_admin_runs_a_step_at_a_given_time(world: World) -> None:
    program_id = _program(world)
    alpha = _award(world, program_id, "alpha", 8)
    admin = world.client("admin")
    at = (world.clock.now + timedelta(days=60)).isoformat()
    response = admin.post("/lifecycle/run", json={"now": at})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["expired"] == [alpha]
    assert report["now"].startswith((world.clock.now + timedelta(days=60)).date().isoformat())
    assert admin.get(f"/awards/{alpha}").json()["status"] == "expired"
    assert admin.post("/lifecycle/run").status_code == 200  # no body: the server's now
    assert world.client("pi").post("/lifecycle/run", json={}).status_code == 403


def test_notices_are_scoped_to_admins_and_pis(world: World) -> None:
    program_id = _program(world)
    _award(world, program_id, "alpha", 8)
    _award(world, program_id, "beta", 8)
    assert world.client("admin").post("/lifecycle/run", json={}).status_code == 200

    def projects(who: str) -> list[int]:
        response = world.client(who).get("/notices")
        assert response.status_code == 200, response.text
        return sorted({n["project_id"] for n in response.json()})

    alpha, beta = world.ids["alpha"], world.ids["beta"]
    assert projects("admin") == sorted([alpha, beta])
    assert projects("pi") == [alpha]
    assert projects("outsider") == [beta]  # the PI of beta
    assert projects("member") == []
    assert projects("reviewer") == []
    unsent = world.client("admin").get("/notices", params={"unsent": True, "limit": 1}).json()
    assert len(unsent) == 1 and unsent[0]["sent_at"] is None


def _rule(world: World, program_id: int) -> tuple[Any, ...]:
    with world.app.state.sessions() as s:
        program = s.get(ProgramRow, program_id)
        assert program is not None
        return (program.reclaim_table, program.reclaim_period_days, program.reclaim_warning_days)


@pytest.mark.parametrize(
    ("body", "want"),
    [
        ({"table": [[0.4, 0.5], [0.2, 0.6]]}, "not monotone"),
        ({"table": [[0.2, 0.3], [0.4, 0.5]]}, "not monotone"),
        ({"table": [[0.2, 1.5]]}, "table.0.1: must be at most 1"),
        ({"table": [[-0.2, 0.5]]}, "table.0.0: must be at least 0"),
        ({"table": [[0.0, 0.5]]}, "below must be within (0, 1]"),
        ({"table": [[0.2, 0.5, 0.1]]}, "table.0"),
        ({"table": [[0.2, 0.5]], "period_days": 30, "warning_days": 30}, "warning must be 0 to 29 days"),
        ({"period_days": 0}, "period_days: must be at least 1"),
        ({"table": "default"}, "table"),
    ],
)
def test_a_bad_rule_is_refused_and_changes_nothing(world: World, body: dict[str, Any], want: str) -> None:
    program_id = _program(world)
    before = _rule(world, program_id)
    response = world.client("admin").put(f"/programs/{program_id}/reclaim-rule", json=body)
    assert response.status_code == 422, response.text
    assert want in response.json()["detail"]
    assert _rule(world, program_id) == before


def test_a_rule_is_read_and_replaced(world: World) -> None:
    program_id = _program(world)
    url = f"/programs/{program_id}/reclaim-rule"
    default = world.client("member").get(url).json()
    assert default == {
        "program_id": program_id,
        "table": [[0.2, 0.8], [0.4, 0.55], [0.55, 0.35], [0.7, 0.2]],
        "default_table": True,
        "period_days": 30,
        "warning_days": 7,
    }
    body = {"table": [[0.5, 0.25]], "period_days": 14, "warning_days": 2}
    assert world.client("pi").put(url, json=body).status_code == 403
    changed = world.client("admin").put(url, json=body).json()
    assert (changed["table"], changed["default_table"], changed["period_days"]) == ([[0.5, 0.25]], False, 14)
    back = world.client("admin").put(url, json={}).json()
    assert back == default
    assert world.client("admin").get("/programs/999/reclaim-rule").status_code == 404


def test_users_set_their_own_address_and_a_bad_one_is_refused(world: World) -> None:
    member = world.ids["member"]
    ok = world.client("member").patch(f"/users/{member}", json={"email": "m@alpha.example"})
    assert ok.status_code == 200 and ok.json()["email"] == "m@alpha.example"
    assert (
        world.client("member").patch(f"/users/{world.ids['pi']}", json={"email": "x@y.example"}).status_code
        == 403
    )
    for bad in ("not-an-address", "a@b.example, c@d.example", "a@b", "x" * 320 + "@b.example"):
        response = world.client("admin").patch(f"/users/{member}", json={"email": bad})
        assert response.status_code == 422, (bad, response.text)
    with world.app.state.sessions() as s:
        user = s.get(UserRow, member)
        assert user is not None and user.email == "m@alpha.example"
    created = world.client("admin").post("/users", json={"name": "newcomer", "email": "new@commons.example"})
    assert created.status_code == 201 and created.json()["email"] == "new@commons.example"
    assert world.client("admin").patch(f"/users/{member}", json={"email": None}).json()["email"] is None


def test_a_step_is_refused_while_another_server_holds_the_lease(world: World) -> None:
    program_id = _program(world)
    _award(world, program_id, "alpha", 8)
    with world.app.state.sessions() as s:
        assert acquire_lease(s, "elsewhere:1:other", 600.0, lease_id=LIFECYCLE_LEASE_ID) is not None
        s.commit()
    response = world.client("admin").post("/lifecycle/run", json={})
    assert response.status_code == 409
    assert "another server" in response.json()["detail"]
    with world.app.state.sessions() as s:
        assert count_rows(s, NoticeRow) == 0


@pytest.mark.parametrize("now", ["2026-03-01T09:00:00", "yesterday", "9999-12-31T23:59:59Z"])
def test_a_bad_now_is_refused(world: World, now: str) -> None:
    response = world.client("admin").post("/lifecycle/run", json={"now": now})
    assert response.status_code == 422, response.text
    with world.app.state.sessions() as s:
        assert count_rows(s, NoticeRow) == 0


def test_a_program_states_its_rule_at_creation_and_each_reclaim_names_its_period(world: World) -> None:
    admin = world.client("admin")
    body = {"name": "ruled", "model": "H100", "capacity_gpus": 16, "duration_days": 60}
    rule = {"reclaim_table": [[0.2, 0.5]], "reclaim_period_days": 10, "reclaim_warning_days": 2}
    refused = admin.post("/programs", json={**body, **rule, "reclaim_warning_days": 10})
    assert refused.status_code == 422 and "warning" in refused.json()["detail"]
    assert admin.get("/programs").json() == []  # nothing stored
    created = admin.post("/programs", json={**body, **rule})
    assert created.status_code == 201, created.text
    assert (created.json()["reclaim_table"], created.json()["reclaim_period_days"]) == ([[0.2, 0.5]], 10)
    award = admin.post(
        "/awards",
        json={"project_id": world.ids["alpha"], "program_id": created.json()["id"], "guaranteed_gpus": 16,
              "gpu_hours_budget": 1000},
    )  # fmt: skip
    assert award.status_code == 201, award.text
    award_id = award.json()["id"]
    assert admin.post(f"/awards/{award_id}/activate").status_code == 200
    at = (world.clock.now + timedelta(days=11)).isoformat()  # the first period ended unused
    assert admin.post("/lifecycle/run", json={"now": at}).status_code == 200
    reclaims = world.client("pi").get(f"/awards/{award_id}/reclaims").json()
    assert [
        (r["reclaimed_gpus"], r["reclaimed_gpu_hours"], r["period"], r["utilization"]) for r in reclaims
    ] == [(8, 500.0, 1, 0.0)]
