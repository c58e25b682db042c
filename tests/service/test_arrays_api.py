"""Job array routes through the real app: one call creates every task, a bad spec is a 422 that stores
nothing, a retry finds the array, and show, list, a task, why and cancel act on what the caller may
see (another project's array answers exactly as one that does not exist)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from gpucommons.store.arrays import ArrayRow
from gpucommons.store.base import count_rows
from gpucommons.store.jobs import JobRow
from tests.service.conftest import World


def submit(client: TestClient, array: str, **fields: Any) -> tuple[int, dict[str, Any]]:
    body = {"project": "alpha", "command": ["sh", "-c", "echo $GPUC_ARRAY_TASK_ID"], "array": array, **fields}
    response = client.post("/arrays", json=body)
    return response.status_code, response.json()


def stored(world: World) -> tuple[int, int]:
    with world.app.state.sessions() as s:
        return count_rows(s, JobRow), count_rows(s, ArrayRow)


def test_one_call_creates_every_task(world: World) -> None:
    member = world.client("member")
    status, array = submit(member, "0-99%10", gpus=2, name="sweep")
    assert status == 201
    assert {k: array[k] for k in ("spec", "task_count", "task_min", "task_max", "max_running")} == {
        "spec": "0-99%10",
        "task_count": 100,
        "task_min": 0,
        "task_max": 99,
        "max_running": 10,
    }
    assert (array["project"], array["name"], array["gpus"], array["states"]) == (
        "alpha",
        "sweep",
        2,
        {"pending": 100},
    )
    tasks = member.get("/jobs", params={"array": array["id"], "limit": 1000}).json()
    assert [t["array_task_id"] for t in tasks] == list(range(100))
    assert tasks[0]["id"] == array["id"] and {t["array_id"] for t in tasks} == {array["id"]}
    assert stored(world) == (100, 1)
    plain = member.post("/jobs", json={"project": "alpha", "command": ["true"]}).json()
    only_plain = member.get("/jobs", params={"tasks": "false"}).json()
    assert [j["id"] for j in only_plain] == [plain["id"]]


def test_a_retry_with_the_same_key_answers_the_stored_array(world: World) -> None:
    member = world.client("member")
    status, first = submit(member, "0-9", idempotency_key="sweep-1")
    status_again, again = submit(member, "0-9", idempotency_key="sweep-1")
    assert (status, status_again, again["id"]) == (201, 200, first["id"])
    assert stored(world) == (10, 1)


BAD_SPECS = [
    ("5-2", "array range 5-2 ends before it starts"),
    ("0-9%0", "array limit %0 must be at least 1"),
    ("0-100000", "has 100001 tasks, more than the maximum of 100000"),
    ("zero-to-ten", "malformed array spec"),
    ("0-9:0", "must be at least 1"),
    ("", "at least 1 character"),
    ("0-9\n", "control character"),
]


@pytest.mark.parametrize(("spec", "want"), BAD_SPECS)
def test_a_bad_spec_is_a_422_that_stores_nothing(world: World, spec: str, want: str) -> None:
    status, body = submit(world.client("member"), spec)
    assert status == 422 and want in body["detail"], body
    assert stored(world) == (0, 0)


def test_the_maximum_size_is_the_servers_setting(world: World) -> None:
    settings = world.app.state.settings
    world.app.state.settings = settings.model_copy(update={"max_array_tasks": 10})
    status, body = submit(world.client("member"), "0-10")
    assert (status, body["detail"]) == (422, "array '0-10' has 11 tasks, more than the maximum of 10")
    assert submit(world.client("member"), "0-9")[0] == 201


def test_a_bad_task_is_refused_for_the_whole_array(world: World) -> None:
    member = world.client("member")
    assert submit(member, "0-9", gpus=17)[0] == 422  # no pool can ever hold 17 GPUs
    assert submit(member, "0-9", priority_class="high")[0] == 403  # members may not jump the line
    assert submit(member, "0-9", project="beta")[0] == 404
    assert stored(world) == (0, 0)


def test_show_task_why_and_list(world: World) -> None:
    member = world.client("member")
    _, array = submit(member, "1,3,5-7%2")
    _, done = submit(member, "0")
    member.post(f"/arrays/{done['id']}/cancel")
    shown = member.get(f"/arrays/{array['id']}").json()
    assert (shown["states"], shown["reason_code"]) == ({"pending": 5}, "new")
    task = member.get(f"/arrays/{array['id']}/tasks/5").json()
    assert (task["array_id"], task["array_task_id"], task["id"]) == (array["id"], 5, array["id"] + 2)
    assert member.get(f"/arrays/{array['id']}/tasks/2").status_code == 404
    why = member.get(f"/arrays/{array['id']}/why").json()
    assert (why["next_task"], why["max_running"], why["why"]["job_id"]) == (1, 2, array["id"])
    assert [a["id"] for a in member.get("/arrays").json()] == [array["id"]]
    assert [a["id"] for a in member.get("/arrays", params={"all": "true"}).json()] == [
        array["id"],
        done["id"],
    ]
    assert member.get(f"/arrays/{done['id']}/why").json()["why"] is None


def test_cancel_reaches_every_task_and_is_idempotent(world: World) -> None:
    member = world.client("member")
    _, array = submit(member, "0-4")
    one = member.get(f"/arrays/{array['id']}/tasks/4").json()
    assert member.post(f"/jobs/{one['id']}/cancel").json()["state"] == "cancelled"  # one task alone
    assert member.get(f"/arrays/{array['id']}").json()["states"] == {"pending": 4, "cancelled": 1}
    cancelled = member.post(f"/arrays/{array['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["states"] == {"cancelled": 5}
    again = member.post(f"/arrays/{array['id']}/cancel")
    assert again.status_code == 200 and again.json()["states"] == {"cancelled": 5}


@pytest.mark.parametrize("who", ["outsider", "reviewer"])
def test_another_projects_array_answers_as_one_that_does_not_exist(world: World, who: str) -> None:
    _, array = submit(world.client("member"), "0-2")
    client = world.client(who)
    missing = array["id"] + 1000
    for path in ("", "/tasks/0", "/why"):
        theirs = client.get(f"/arrays/{array['id']}{path}")
        nowhere = client.get(f"/arrays/{missing}{path}")
        assert (theirs.status_code, nowhere.status_code) == (404, 404)
        assert theirs.json()["detail"] == nowhere.json()["detail"].replace(str(missing), str(array["id"]))
    assert client.post(f"/arrays/{array['id']}/cancel").status_code == 404
    assert client.get("/arrays").json() == []
    assert world.client("member").get(f"/arrays/{array['id']}").json()["states"] == {"pending": 3}
