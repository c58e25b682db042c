"""The role x action matrix: every endpoint of the control plane called as every kind of caller, with
the status each must get. 2xx where the role allows it, 401 without a valid token, 403 with a reason
otherwise (404 for objects that do not exist)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.service.conftest import World

ROLES = ("admin", "reviewer", "pi", "member", "outsider", None, "expired", "unknown")
OK = "ok"


def _setup(world: World) -> dict[str, int]:
    """A program, a proposal of alpha and an award to alpha, made by the admin and the PI."""
    admin, pi = world.client("admin"), world.client("pi")
    program = admin.post("/programs", json={"name": "call", "model": "H200", "capacity_gpus": 64})
    assert program.status_code == 201, program.text
    pid = program.json()["id"]
    alpha = world.ids["alpha"]
    proposal = pi.post("/proposals", json={"program_id": pid, "project_id": alpha, "requested_gpus": 16})
    assert proposal.status_code == 201, proposal.text
    award = admin.post("/awards", json={"project_id": alpha, "program_id": pid, "guaranteed_gpus": 8})
    assert award.status_code == 201, award.text
    return {"program": pid, "proposal": proposal.json()["id"], "award": award.json()["id"]}


# (method, path template, body builder or None) -> expected result per role
MATRIX: list[tuple[str, str, Any, dict[str | None, Any]]] = [
    ("GET", "/institutions", None, {"admin": OK, "reviewer": OK, "pi": OK, "member": OK, "outsider": OK}),
    (
        "POST",
        "/institutions",
        lambda w, ids: {"name": f"inst-{len(ids)}", "kind": "sme", "region": "capital"},
        {"admin": OK},
    ),
    ("GET", "/projects/{alpha}", None, {"admin": OK, "reviewer": OK, "pi": OK, "member": OK}),
    ("GET", "/projects/{alpha}/members", None, {"admin": OK, "reviewer": OK, "pi": OK, "member": OK}),
    (
        "POST",
        "/projects/{alpha}/members",
        lambda w, ids: {"user_id": w.ids["reviewer"], "role": "member"},
        {"admin": OK, "pi": OK},
    ),
    ("DELETE", "/projects/{alpha}/members/{member}", None, {"admin": OK, "pi": OK}),
    (
        "POST",
        "/projects",
        lambda w, ids: {"name": "gamma", "institution_id": w.ids["kaist"]},
        {"admin": OK},
    ),
    ("GET", "/users", None, {"admin": OK}),
    ("POST", "/users", lambda w, ids: {"name": "newbie"}, {"admin": OK}),
    ("GET", "/users/me", None, {"admin": OK, "reviewer": OK, "pi": OK, "member": OK, "outsider": OK}),
    (
        "POST",
        "/users/me/tokens",
        lambda w, ids: {},
        {"admin": OK, "reviewer": OK, "pi": OK, "member": OK, "outsider": OK},
    ),
    ("POST", "/users/{member}/tokens", lambda w, ids: {}, {"admin": OK}),
    ("GET", "/programs", None, {"admin": OK, "reviewer": OK, "pi": OK, "member": OK, "outsider": OK}),
    (
        "POST",
        "/programs",
        lambda w, ids: {"name": "call-2", "model": "B200", "capacity_gpus": 16},
        {"admin": OK},
    ),
    ("POST", "/programs/{program}/close", None, {"admin": OK}),
    ("POST", "/programs/{program}/open", None, {"admin": OK}),
    ("POST", "/programs/{program}/auto-award", lambda w, ids: {}, {"admin": OK}),
    (
        "POST",
        "/proposals",
        lambda w, ids: {"program_id": ids["program2"], "project_id": w.ids["alpha"], "requested_gpus": 8},
        {"admin": OK, "pi": OK},
    ),
    ("GET", "/proposals/{proposal}", None, {"admin": OK, "reviewer": OK, "pi": OK, "member": OK}),
    ("POST", "/proposals/{proposal}/reviews", lambda w, ids: {"score": 70}, {"admin": OK, "reviewer": OK}),
    ("GET", "/proposals/{proposal}/reviews", None, {"admin": OK, "reviewer": OK}),
    ("POST", "/proposals/{proposal}/reject", None, {"admin": OK}),
    ("GET", "/awards/{award}", None, {"admin": OK, "reviewer": OK, "pi": OK, "member": OK}),
    ("GET", "/awards/{award}/reclaims", None, {"admin": OK, "reviewer": OK, "pi": OK, "member": OK}),
    (
        "POST",
        "/awards",
        lambda w, ids: {"project_id": w.ids["alpha"], "program_id": ids["program"], "gpu_hours_budget": 100},
        {"admin": OK},
    ),
    ("POST", "/awards/{award}/activate", None, {"admin": OK}),
    ("POST", "/awards/{award}/extend", lambda w, ids: {"ends_at": "2030-01-01T00:00:00Z"}, {"admin": OK}),
    ("POST", "/awards/expire", None, {"admin": OK}),
    ("POST", "/awards/reclaim", lambda w, ids: {"utilization_by_award": {}}, {"admin": OK}),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "allowed"), MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX]
)
def test_role_matrix(world: World, method: str, path: str, body: Any, allowed: dict[str | None, Any]) -> None:
    ids = _setup(world)
    second = world.client("admin").post(
        "/programs", json={"name": "call-b", "model": "H200", "capacity_gpus": 8}
    )
    ids["program2"] = second.json()["id"]
    url = path.format(**world.ids, **ids)
    for role in ROLES:
        response = world.client(role).request(method, url, json=body(world, ids) if body else None)
        status = response.status_code
        if role in (None, "expired", "unknown"):
            assert status == 401, (role, status, response.text)
            assert response.json()["detail"]
        elif role in allowed:
            assert 200 <= status < 300, (role, status, response.text)
            if method != "GET":  # a second identical write by the next role may legitimately conflict
                ids = _setup_again(world, ids, method, path)
                url = path.format(**world.ids, **ids)
        else:
            assert status in (403, 404), (role, status, response.text)
            assert response.json()["detail"], role


def _setup_again(world: World, ids: dict[str, int], method: str, path: str) -> dict[str, int]:
    """Writes change state (a removed member, a rejected proposal); restore what the next role needs."""
    admin = world.client("admin")
    if path.endswith("/members/{member}"):
        admin.post(f"/projects/{world.ids['alpha']}/members", json={"user_id": world.ids["member"]})
    if path.endswith("/reject"):
        with world.app.state.sessions() as s:
            from gpucommons.store.programs import get_proposal

            get_proposal(s, ids["proposal"]).status = "submitted"
            s.commit()
    if path.endswith("/activate"):
        with world.app.state.sessions() as s:
            from gpucommons.store.awards import get_award

            get_award(s, ids["award"]).status = "pending"
            s.commit()
    if path == "/proposals":
        with world.app.state.sessions() as s:
            from sqlalchemy import delete

            from gpucommons.store.models import ProposalRow

            s.execute(delete(ProposalRow).where(ProposalRow.program_id == ids["program2"]))
            s.commit()
    if path == "/projects":
        with world.app.state.sessions() as s:
            from sqlalchemy import delete

            from gpucommons.store.models import ProjectRow

            s.execute(delete(ProjectRow).where(ProjectRow.name == "gamma"))
            s.commit()
    if path == "/users":
        with world.app.state.sessions() as s:
            from sqlalchemy import delete

            from gpucommons.store.models import UserRow

            s.execute(delete(UserRow).where(UserRow.name == "newbie"))
            s.commit()
    if path == "/programs":
        with world.app.state.sessions() as s:
            from sqlalchemy import delete

            from gpucommons.store.models import ProgramRow

            s.execute(delete(ProgramRow).where(ProgramRow.name == "call-2"))
            s.commit()
    if path == "/institutions":
        ids = {**ids, "n": ids.get("n", 0) + 1}
    return ids


def test_members_see_only_their_projects(world: World) -> None:
    _setup(world)
    alpha, beta = world.ids["alpha"], world.ids["beta"]
    assert {p["id"] for p in world.client("member").get("/projects").json()} == {alpha}
    assert {p["id"] for p in world.client("outsider").get("/projects").json()} == {beta}
    assert {p["id"] for p in world.client("reviewer").get("/projects").json()} == {alpha, beta}
    assert world.client("outsider").get("/proposals").json() == []
    assert world.client("outsider").get("/awards").json() == []
    assert len(world.client("member").get("/awards").json()) == 1
    denied = world.client("outsider").get(f"/projects/{alpha}")
    assert denied.status_code == 403 and "not a member" in denied.json()["detail"]


def test_reviewer_in_the_project_cannot_score_it(world: World) -> None:
    ids = _setup(world)
    world.client("admin").post(
        f"/projects/{world.ids['alpha']}/members", json={"user_id": world.ids["reviewer"]}
    )
    response = world.client("reviewer").post(f"/proposals/{ids['proposal']}/reviews", json={"score": 99})
    assert response.status_code == 403 and "cannot score" in response.json()["detail"]


def test_expired_token_says_so(world: World) -> None:
    response = world.client("expired").get("/users/me")
    assert response.status_code == 401 and "expired" in response.json()["detail"]
