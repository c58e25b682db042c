"""Bad requests get a 4xx with a one-line reason and change nothing stored (rows counted before and
after), and the auto-award endpoint respects capacity, unit, per-organisation cap and region."""

from __future__ import annotations

from typing import Any

import pytest

from gpucommons.store import repos
from gpucommons.store.models import (
    AwardRow,
    InstitutionRow,
    MembershipRow,
    ProgramRow,
    ProjectRow,
    ProposalRow,
    ReviewRow,
    UserRow,
)
from tests.service.conftest import World

COUNTED = (InstitutionRow, ProjectRow, UserRow, MembershipRow, ProgramRow, ProposalRow, ReviewRow, AwardRow)


def _counts(world: World) -> dict[str, int]:
    with world.app.state.sessions() as s:
        return {t.__name__: repos.count_rows(s, t) for t in COUNTED}


def _program(world: World, **extra: Any) -> int:
    body = {"name": "call", "model": "H200", "capacity_gpus": 32, **extra}
    response = world.client("admin").post("/programs", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


CASES = [
    ("admin", "POST", "/projects", {"name": "x", "institution_id": 999}, 404),
    ("admin", "POST", "/programs", {"name": "neg", "model": "H200", "capacity_gpus": -8}, 422),
    ("admin", "POST", "/programs", {"name": "odd", "model": "H200", "capacity_gpus": 12}, 422),
    (
        "admin",
        "POST",
        "/programs",
        {"name": "d", "model": "H200", "capacity_gpus": 8, "discounts": {"x": 1}},
        422,
    ),
    ("admin", "POST", "/institutions", {"name": "KAIST", "kind": "university", "region": "capital"}, 409),
    ("admin", "POST", "/institutions", {"name": "z", "kind": "bank", "region": "capital"}, 422),
    ("admin", "POST", "/users", {"name": "", "role": "user"}, 422),
    ("admin", "POST", "/users", {"name": "u", "role": "god"}, 422),
    (
        "pi",
        "POST",
        "/proposals",
        {"program_id": "{program}", "project_id": "{alpha}", "requested_gpus": -8},
        422,
    ),
    (
        "pi",
        "POST",
        "/proposals",
        {"program_id": "{program}", "project_id": "{alpha}", "requested_gpus": 12},
        422,
    ),
    ("pi", "POST", "/proposals", {"program_id": 999, "project_id": "{alpha}", "requested_gpus": 8}, 404),
    ("pi", "POST", "/proposals", {"program_id": "{program}", "project_id": 999, "requested_gpus": 8}, 404),
    (
        "admin",
        "POST",
        "/awards",
        {"project_id": "{alpha}", "program_id": "{program}", "guaranteed_gpus": -8},
        422,
    ),
    (
        "admin",
        "POST",
        "/awards",
        {"project_id": "{alpha}", "program_id": "{program}", "guaranteed_gpus": 40},
        409,
    ),
    (
        "admin",
        "POST",
        "/awards",
        {"project_id": "{alpha}", "program_id": "{program}", "guaranteed_gpus": 8, "ends_at": "next tuesday"},
        422,
    ),
    (
        "admin",
        "POST",
        "/awards",
        {
            "project_id": "{alpha}",
            "program_id": "{program}",
            "guaranteed_gpus": 8,
            "ends_at": "2026-05-01T00:00",
        },
        422,
    ),
    ("admin", "POST", "/awards", {"project_id": "{alpha}", "program_id": "{program}"}, 422),
    ("admin", "POST", "/users/me/tokens", {"expires_at": "2020-01-01T00:00:00Z"}, 422),
    ("expired", "POST", "/institutions", {"name": "y", "kind": "sme", "region": "capital"}, 401),
    ("admin", "POST", "/projects/{alpha}/members", {"user_id": 999}, 404),
    ("admin", "POST", "/projects/{alpha}/members", {"user_id": "{member}", "role": "owner"}, 422),
]


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, str) and value.startswith("{"):
        return ids[value.strip("{}")]
    return value


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "want"), CASES, ids=[str(c[3])[:60] for c in CASES]
)
def test_bad_input_is_refused_and_stores_nothing(
    world: World, who: str, method: str, path: str, body: dict[str, Any], want: int
) -> None:
    ids = {**world.ids, "program": _program(world)}
    before = _counts(world)
    response = world.client(who).request(method, path.format(**ids), json=_fill(body, ids))
    assert response.status_code == want, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    assert _counts(world) == before


def test_auto_award_over_http_respects_capacity_cap_and_region(world: World) -> None:
    admin, reviewer = world.client("admin"), world.client("reviewer")
    program = _program(world, capacity_gpus=24, cap_per_org_gpus=16, non_capital_bonus=10)
    # alpha: KAIST (non-capital), score 70 + 10; beta: Seoul AI (capital), score 75.
    world.client("pi").post(
        "/proposals", json={"program_id": program, "project_id": world.ids["alpha"], "requested_gpus": 24}
    )
    world.client("outsider").post(
        "/proposals", json={"program_id": program, "project_id": world.ids["beta"], "requested_gpus": 16}
    )
    proposals = {p["project_id"]: p["id"] for p in admin.get("/proposals").json()}
    reviewer.post(f"/proposals/{proposals[world.ids['alpha']]}/reviews", json={"score": 70})
    reviewer.post(f"/proposals/{proposals[world.ids['beta']]}/reviews", json={"score": 75})
    made = admin.post(f"/programs/{program}/auto-award", json={})
    assert made.status_code == 201, made.text
    got = [(a["project_id"], a["guaranteed_gpus"]) for a in made.json()]
    assert got == [(world.ids["alpha"], 16), (world.ids["beta"], 8)]
    again = admin.post(f"/programs/{program}/auto-award", json={})
    assert again.json() == []
