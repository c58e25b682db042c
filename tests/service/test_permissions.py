"""The permission matrix: every route of the API (taken from ``app.routes``, so a new route without a
row fails) called as every kind of caller, each cell with exactly one expected status.

Callers: the admin, a reviewer, the PI and a member of project ``alpha``, an outsider (PI of ``beta``),
and four without a valid token (none, expired, revoked, unknown), who get 401 everywhere but on the
public routes. An object of another tenant answers 404 with the body of an id that does not exist;
403 is kept where the caller may know the object exists (their own project, a reviewer who sees every
project) or for admin-only routes, which refuse before looking anything up.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import delete

from gpucommons.store.calls import ProposalRow
from gpucommons.store.tenancy import create_token, create_user, revoke_token, set_membership
from tests.service.conftest import World

SIGNED_IN = ("admin", "reviewer", "pi", "member", "outsider")
NO_VALID_TOKEN = (None, "expired", "revoked", "unknown")
Ids = dict[str, int]
_names = itertools.count()


def _unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


@dataclass(frozen=True)
class Row:
    """One route: ``want`` is the status for admin, reviewer, pi, member, outsider (in that order);
    callers without a valid token get 401, or ``want[0]`` on a ``public`` route. ``fill`` names the
    object behind a path parameter where the default (``DEFAULT_FILL``) does not fit (or gives the
    parameter itself, such as a node's name, when no object is called that); ``restore``
    undoes a successful write the next caller would otherwise trip over."""

    method: str
    path: str
    want: tuple[int, int, int, int, int]
    body: Callable[[Ids], Any] | None = None
    fill: dict[str, str] = field(default_factory=dict)
    public: bool = False
    restore: Callable[[World, Ids], None] | None = None


DEFAULT_FILL = {
    "project_id": "alpha",
    "program_id": "program",
    "proposal_id": "proposal",
    "award_id": "award",
    "job_id": "job",
    "array_id": "array",
    "reservation_id": "reservation",
    "token_id": "spare_token",
    "user_id": "member",
}
RESERVATION = {
    "project": "alpha",
    "model": "H100",
    "gpus": 8,
    "start_at": "2029-01-01T00:00:00Z",
    "duration_s": 60,
}
ALL_OK = (200, 200, 200, 200, 200)
ADMIN_ONLY = (200, 403, 403, 403, 403)
ADMIN_CREATES = (201, 403, 403, 403, 403)
ALPHA_READERS = (200, 200, 200, 200, 404)
JOB_READERS = (200, 404, 200, 200, 404)
STAFF_READERS = (200, 200, 403, 403, 403)


def _readd_spare(world: World, ids: Ids) -> None:
    with world.app.state.sessions() as s:
        set_membership(s, ids["alpha"], ids["spare"], "member")
        s.commit()


def _drop_proposals_of_program2(world: World, ids: Ids) -> None:
    with world.app.state.sessions() as s:
        s.execute(delete(ProposalRow).where(ProposalRow.program_id == ids["program2"]))
        s.commit()


MATRIX: list[Row] = [
    Row("GET", "/openapi.json", ALL_OK, public=True),
    Row("GET", "/docs", ALL_OK, public=True),
    Row("GET", "/docs/oauth2-redirect", ALL_OK, public=True),
    Row("GET", "/redoc", ALL_OK, public=True),
    Row("GET", "/healthz", ALL_OK, public=True),
    Row("GET", "/metrics", ALL_OK, public=True),
    # tenancy
    Row("GET", "/institutions", ALL_OK),
    Row(
        "POST",
        "/institutions",
        ADMIN_CREATES,
        lambda ids: {"name": _unique("inst"), "kind": "sme", "region": "capital"},
    ),
    Row("GET", "/projects", ALL_OK),
    Row(
        "POST", "/projects", ADMIN_CREATES, lambda ids: {"name": _unique("p"), "institution_id": ids["kaist"]}
    ),
    Row("GET", "/projects/{project_id}", ALPHA_READERS),
    Row("GET", "/projects/{project_id}/members", ALPHA_READERS),
    Row(
        "POST",
        "/projects/{project_id}/members",
        (201, 403, 201, 403, 404),
        lambda ids: {"user_id": ids["spare"], "role": "member"},
    ),
    Row(
        "DELETE",
        "/projects/{project_id}/members/{user_id}",
        (204, 403, 204, 403, 404),
        fill={"user_id": "spare"},
        restore=_readd_spare,
    ),
    Row("GET", "/users", ADMIN_ONLY),
    Row("POST", "/users", ADMIN_CREATES, lambda ids: {"name": _unique("user")}),
    Row("GET", "/users/me", ALL_OK),
    Row("POST", "/users/me/tokens", (201, 201, 201, 201, 201), lambda ids: {}),
    Row("POST", "/users/{user_id}/tokens", ADMIN_CREATES, lambda ids: {}),
    Row("PATCH", "/users/{user_id}", (200, 403, 403, 200, 403), lambda ids: {"email": "m@alpha.example"}),
    Row("GET", "/tokens", ALL_OK),
    Row("DELETE", "/tokens/{token_id}", (200, 404, 404, 200, 404)),
    # allocation
    Row("GET", "/programs", ALL_OK),
    Row(
        "POST",
        "/programs",
        ADMIN_CREATES,
        lambda ids: {"name": _unique("call"), "model": "A100", "capacity_gpus": 8},
    ),
    Row("GET", "/programs/{program_id}", ALL_OK),
    Row("POST", "/programs/{program_id}/open", ADMIN_ONLY),
    Row("POST", "/programs/{program_id}/close", ADMIN_ONLY),
    Row("POST", "/programs/{program_id}/auto-award", ADMIN_CREATES, lambda ids: {}),
    Row("GET", "/programs/{program_id}/reclaim-rule", ALL_OK),
    Row("PUT", "/programs/{program_id}/reclaim-rule", ADMIN_ONLY, lambda ids: {}),
    Row(
        "POST",
        "/proposals",
        (201, 403, 201, 403, 404),
        lambda ids: {"program_id": ids["program2"], "project_id": ids["alpha"], "requested_gpus": 8},
        restore=_drop_proposals_of_program2,
    ),
    Row("GET", "/proposals", ALL_OK),
    Row("GET", "/proposals/{proposal_id}", ALPHA_READERS),
    Row("POST", "/proposals/{proposal_id}/reject", ADMIN_ONLY),
    Row("POST", "/proposals/{proposal_id}/reviews", (201, 201, 403, 403, 404), lambda ids: {"score": 70}),
    Row("GET", "/proposals/{proposal_id}/reviews", (200, 200, 403, 403, 404)),
    Row(
        "POST",
        "/awards",
        ADMIN_CREATES,
        lambda ids: {"project_id": ids["alpha"], "program_id": ids["program"], "gpu_hours_budget": 100},
    ),
    Row("GET", "/awards", ALL_OK),
    Row("POST", "/awards/expire", ADMIN_ONLY),
    Row("POST", "/awards/reclaim", ADMIN_ONLY, lambda ids: {"utilization_by_award": {}}),
    Row("GET", "/awards/{award_id}", ALPHA_READERS),
    Row("GET", "/awards/{award_id}/reclaims", ALPHA_READERS),
    Row("POST", "/awards/{award_id}/activate", ADMIN_ONLY),
    Row("POST", "/awards/{award_id}/extend", ADMIN_ONLY, lambda ids: {"ends_at": "2030-01-01T00:00:00Z"}),
    # jobs
    Row("POST", "/jobs", (201, 403, 201, 201, 404), lambda ids: {"project": "alpha", "command": ["true"]}),
    Row("GET", "/jobs", ALL_OK),
    Row("GET", "/jobs/{job_id}", JOB_READERS),
    Row("POST", "/jobs/{job_id}/cancel", JOB_READERS),
    Row("POST", "/jobs/{job_id}/checkpoint", JOB_READERS),
    Row("GET", "/jobs/{job_id}/why", JOB_READERS),
    Row("GET", "/jobs/{job_id}/logs", JOB_READERS),
    Row("GET", "/jobs/{job_id}/events", JOB_READERS),
    Row(
        "POST",
        "/arrays",
        (201, 403, 201, 201, 404),
        lambda ids: {"project": "alpha", "command": ["true"], "array": "0-1"},
    ),
    Row("GET", "/arrays", ALL_OK),
    Row("GET", "/arrays/{array_id}", JOB_READERS),
    Row("GET", "/arrays/{array_id}/tasks/{index}", JOB_READERS, fill={"index": "0"}),
    Row("GET", "/arrays/{array_id}/why", JOB_READERS),
    Row("POST", "/arrays/{array_id}/cancel", JOB_READERS),
    Row("GET", "/usage", ALL_OK),
    # reports
    Row("GET", "/reports/usage", ALL_OK),
    Row("GET", "/reports/compute", ALL_OK),
    Row("GET", "/reports/compute/{project}", ALPHA_READERS, fill={"project": "alpha"}),
    # declared targets: admins declare and delete, reviewers and admins read
    Row(
        "POST",
        "/targets",
        ADMIN_CREATES,
        lambda ids: {"name": _unique("t"), "kind": "share", "by": "kind", "group": "sme", "threshold": 10},
    ),
    Row("GET", "/targets", STAFF_READERS),
    Row("GET", "/targets/attainment", STAFF_READERS),
    Row("DELETE", "/targets/{target_id}", (404, 403, 403, 403, 403), fill={"target_id": "999999"}),
    # reservations: admins, or a project's PIs within its awards (alpha's award is still pending)
    Row(
        "POST",
        "/reservations",
        (201, 403, 403, 403, 404),
        lambda ids: {**RESERVATION, "start_at": "2030-01-01T00:00:00Z"},
    ),
    Row("GET", "/reservations", ALL_OK),
    Row("GET", "/reservations/{reservation_id}", ALPHA_READERS),
    Row("POST", "/reservations/{reservation_id}/cancel", (200, 403, 200, 403, 404)),
    # the award lifecycle
    Row("POST", "/lifecycle/run", ADMIN_ONLY, lambda ids: {}),
    Row("GET", "/notices", ALL_OK),
    # nodes
    Row("GET", "/nodes", ALL_OK),
    Row(
        "POST",
        "/nodes/{name}/drain",
        ADMIN_ONLY,
        lambda ids: {"reason": "maintenance"},
        fill={"name": "h100-1"},
    ),
    Row("POST", "/nodes/{name}/resume", ADMIN_ONLY, fill={"name": "h100-1"}),
]


def objects(world: World) -> Ids:
    """A program (and a second one), a proposal, an award, a job and a job array of alpha; a spare
    member of alpha with a spare token; and a revoked token (``world.tokens["revoked"]``)."""
    admin, pi = world.client("admin"), world.client("pi")
    alpha = world.ids["alpha"]
    program = admin.post("/programs", json={"name": "call", "model": "H100", "capacity_gpus": 16})
    program2 = admin.post("/programs", json={"name": "call-b", "model": "H100", "capacity_gpus": 8})
    assert program.status_code == program2.status_code == 201, program.text
    ids: Ids = {**world.ids, "program": program.json()["id"], "program2": program2.json()["id"]}
    proposal = pi.post(
        "/proposals", json={"program_id": ids["program"], "project_id": alpha, "requested_gpus": 8}
    )
    award = admin.post(
        "/awards", json={"project_id": alpha, "program_id": ids["program"], "guaranteed_gpus": 8}
    )
    job = pi.post("/jobs", json={"project": "alpha", "command": ["true"]})
    array = pi.post("/arrays", json={"project": "alpha", "command": ["true"], "array": "0-1"})
    for response in (proposal, award, job, array):
        assert response.status_code == 201, response.text
    ids.update(proposal=proposal.json()["id"], award=award.json()["id"], job=job.json()["id"])
    ids["array"] = array.json()["id"]
    reservation = admin.post("/reservations", json=RESERVATION)
    assert reservation.status_code == 201, reservation.text
    ids["reservation"] = reservation.json()["id"]
    now = world.clock.now
    with world.app.state.sessions() as s:
        spare = create_user(s, "spare", "user")
        set_membership(s, alpha, spare.id, "member")
        spare_token, _ = create_token(s, ids["member"], now, label="spare")
        revoked, world.tokens["revoked"] = create_token(s, ids["outsider"], now)
        revoke_token(s, revoked.id, now)
        s.commit()
        ids.update(spare=spare.id, spare_token=spare_token.id)
    return ids


def _routes(world: World) -> set[tuple[str, str]]:
    """(method, path template) of every route; a convertor (``{id:int}``) is left out of the name."""
    return {
        (method, re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path))
        for route in iter_route_contexts(world.app.routes)
        if route.path is not None
        for method in route.methods or ()
        if method != "HEAD"
    }


def test_every_route_has_exactly_one_row(world: World) -> None:
    rows = [(r.method, r.path) for r in MATRIX]
    assert len(rows) == len(set(rows)), "a route has two rows"
    assert set(rows) == _routes(world)


def _url(row: Row, ids: Ids) -> str:
    names = {**DEFAULT_FILL, **row.fill}
    return row.path.format(**{param: ids.get(name, name) for param, name in names.items()})  # or a name


@pytest.mark.parametrize("row", MATRIX, ids=[f"{r.method} {r.path}" for r in MATRIX])
def test_role_matrix(world: World, row: Row) -> None:
    ids = objects(world)
    url = _url(row, ids)
    want: dict[str | None, int] = dict(zip(SIGNED_IN, row.want, strict=True))
    for role in NO_VALID_TOKEN:
        want[role] = row.want[0] if row.public else 401
    got: dict[str | None, int] = {}
    for role, expected in want.items():
        response = world.client(role).request(row.method, url, json=row.body(ids) if row.body else None)
        got[role] = response.status_code
        if response.status_code >= 400:
            detail = response.json()["detail"]
            assert isinstance(detail, str) and detail and "\n" not in detail, (role, response.text)
        elif row.restore is not None:
            row.restore(world, ids)
        assert response.status_code == expected, (role, response.status_code, response.text)
    assert got == want


# An outsider asking for an object of alpha is told exactly what an id that does not exist gets.
HIDDEN: list[tuple[str, str, str, Callable[[Ids], Any] | None]] = [
    ("GET", "/projects/{id}", "project", None),
    ("GET", "/projects/{id}/members", "project", None),
    ("POST", "/projects/{id}/members", "project", lambda ids: {"user_id": ids["outsider"]}),
    ("GET", "/proposals/{id}", "proposal", None),
    ("GET", "/proposals/{id}/reviews", "proposal", None),
    ("POST", "/proposals/{id}/reviews", "proposal", lambda ids: {"score": 10}),
    ("GET", "/awards/{id}", "award", None),
    ("GET", "/awards/{id}/reclaims", "award", None),
    ("GET", "/jobs/{id}", "job", None),
    ("POST", "/jobs/{id}/cancel", "job", None),
    ("GET", "/jobs/{id}/why", "job", None),
    ("GET", "/jobs/{id}/logs", "job", None),
    ("GET", "/jobs/{id}/events", "job", None),
    ("DELETE", "/tokens/{id}", "token", None),
    ("GET", "/reservations/{id}", "reservation", None),
    ("POST", "/reservations/{id}/cancel", "reservation", None),
]
KEY = {"project": "alpha", "proposal": "proposal", "award": "award", "job": "job", "token": "spare_token"}
KEY["reservation"] = "reservation"


@pytest.mark.parametrize(
    ("method", "path", "what", "body"), HIDDEN, ids=[f"{m} {p}" for m, p, _, _ in HIDDEN]
)
def test_other_tenants_objects_look_absent(
    world: World, method: str, path: str, what: str, body: Callable[[Ids], Any] | None
) -> None:
    ids = objects(world)
    outsider = world.client("outsider")
    real, missing = ids[KEY[what]], 999_999
    payload = body(ids) if body else None
    hidden = outsider.request(method, path.format(id=real), json=payload)
    absent = outsider.request(method, path.format(id=missing), json=payload)
    assert (hidden.status_code, hidden.json()) == (404, {"detail": f"{what} {real} not found"})
    assert (absent.status_code, absent.json()) == (404, {"detail": f"{what} {missing} not found"})


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/jobs", {"project": "{ref}", "command": ["true"]}),
        ("GET", "/jobs?project={ref}", None),
        ("GET", "/usage?project={ref}", None),
    ],
)
def test_other_tenants_project_by_name_looks_absent(
    world: World, method: str, path: str, body: dict[str, Any] | None
) -> None:
    objects(world)
    outsider = world.client("outsider")
    for ref in ("alpha", "nope"):
        payload = {k: v.format(ref=ref) if isinstance(v, str) else v for k, v in (body or {}).items()}
        response = outsider.request(method, path.format(ref=ref), json=payload or None)
        assert (response.status_code, response.json()) == (404, {"detail": f"project {ref!r} does not exist"})


def test_members_see_only_their_projects(world: World) -> None:
    objects(world)
    alpha, beta = world.ids["alpha"], world.ids["beta"]
    assert {p["id"] for p in world.client("member").get("/projects").json()} == {alpha}
    assert {p["id"] for p in world.client("outsider").get("/projects").json()} == {beta}
    assert {p["id"] for p in world.client("reviewer").get("/projects").json()} == {alpha, beta}
    assert world.client("outsider").get("/proposals").json() == []
    assert world.client("outsider").get("/awards").json() == []
    assert world.client("outsider").get("/jobs").json() == []
    assert len(world.client("member").get("/awards").json()) == 1


def test_403_names_the_missing_role_where_the_caller_sees_the_object(world: World) -> None:
    ids = objects(world)
    alpha = ids["alpha"]
    member = world.client("member").post(f"/projects/{alpha}/members", json={"user_id": ids["spare"]})
    assert member.status_code == 403 and "not a PI" in member.json()["detail"]
    reviewer = world.client("reviewer").post("/jobs", json={"project": "alpha", "command": ["true"]})
    assert reviewer.status_code == 403 and "not a member" in reviewer.json()["detail"]
    listing = world.client("reviewer").get("/jobs", params={"project": "alpha"})
    assert listing.status_code == 403 and "not a member" in listing.json()["detail"]


def test_reviewer_in_the_project_cannot_score_it(world: World) -> None:
    ids = objects(world)
    world.client("admin").post(f"/projects/{ids['alpha']}/members", json={"user_id": ids["reviewer"]})
    response = world.client("reviewer").post(f"/proposals/{ids['proposal']}/reviews", json={"score": 99})
    assert response.status_code == 403 and "cannot score" in response.json()["detail"]


def test_expired_and_revoked_tokens_say_so(world: World) -> None:
    objects(world)
    expired = world.client("expired").get("/users/me")
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    revoked = world.client("revoked").get("/users/me")
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
