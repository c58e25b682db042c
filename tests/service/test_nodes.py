"""Nodes through the API: everyone sees each node and its drain; admins drain and resume; a drain
survives as a row and shows in ``/metrics``; bad requests change nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gpucommons.store.nodes import NodeDrainRow
from tests.service.conftest import World


def _drains(world: World) -> list[tuple[str, str]]:
    with world.app.state.sessions() as s:
        return [
            (r.node_name, r.reason) for r in s.scalars(select(NodeDrainRow).order_by(NodeDrainRow.node_name))
        ]


def test_an_admin_drains_and_resumes_a_node_everyone_sees(world: World) -> None:
    admin, member = world.client("admin"), world.client("member")
    listed = member.get("/nodes").json()
    assert [n["name"] for n in listed] == ["h100-1", "h100-2", "a100-1", "a100-2"]  # the cluster file's order
    assert listed[0] | {"drained_at": None} == {
        "name": "h100-1",
        "pool": "h100",
        "model": "H100",
        "site": listed[0]["site"],
        "gpus": 8,
        "gpus_allocated": 0,
        "drained": False,
        "drain_reason": "",
        "drained_by": "",
        "drained_at": None,
    }
    drained = admin.post("/nodes/h100-1/drain", json={"reason": "GPU 3 fails ECC checks"})
    assert drained.status_code == 200, drained.text
    body = drained.json()
    assert (body["drained"], body["drain_reason"], body["drained_by"]) == (
        True,
        "GPU 3 fails ECC checks",
        "admin",
    )
    assert body["drained_at"].startswith(world.clock.now.date().isoformat())
    # Draining again keeps the first drain; the member sees it.
    again = admin.post("/nodes/h100-1/drain", json={"reason": "another reason"})
    assert again.json()["drain_reason"] == "GPU 3 fails ECC checks"
    assert [n["drained"] for n in member.get("/nodes").json()] == [True, False, False, False]
    assert _drains(world) == [("h100-1", "GPU 3 fails ECC checks")]
    assert "gpuc_drained_nodes 1.0" in member.get("/metrics").text
    resumed = admin.post("/nodes/h100-1/resume")
    assert resumed.status_code == 200 and resumed.json()["drained"] is False
    assert admin.post("/nodes/h100-1/resume").status_code == 200  # resuming a node in service: no change
    assert _drains(world) == []
    assert "gpuc_drained_nodes 0.0" in member.get("/metrics").text


@pytest.mark.parametrize(
    ("who", "path", "body", "status"),
    [
        ("member", "/nodes/h100-1/drain", {"reason": "mine now"}, 403),
        ("pi", "/nodes/h100-1/drain", {"reason": "mine now"}, 403),
        ("admin", "/nodes/h100-9/drain", {"reason": "no such node"}, 404),
        ("admin", "/nodes/h100-1/drain", {"reason": ""}, 422),
        ("admin", "/nodes/h100-1/drain", {"reason": "two\nlines"}, 422),
        ("admin", "/nodes/h100-1/drain", {}, 422),
        ("admin", "/nodes/h100-1/drain", {"reason": "x" * 201}, 422),
        ("admin", "/nodes/h100-1/drain", {"reason": "ok", "extra": 1}, 422),
        ("admin", "/nodes/h%00-1/drain", {"reason": "NUL in the name"}, 422),
        ("admin", "/nodes/h100-9/resume", None, 404),
    ],
)
def test_bad_drains_are_refused_and_change_nothing(
    world: World, who: str, path: str, body: dict[str, object] | None, status: int
) -> None:
    world.client("admin").post("/nodes/a100-2/drain", json={"reason": "kept"})
    response = world.client(who).post(path, json=body)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail
    assert _drains(world) == [("a100-2", "kept")]
