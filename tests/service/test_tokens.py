"""API tokens: listed without secrets, revoked at once, expiring by default, last use recorded sparingly,
stored only as a hash; and priority classes and non-preemptible jobs limited to admins and PIs."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import bindparam, inspect, select, text

from gpucommons.service.auth import LAST_USED_RESOLUTION_S
from gpucommons.store.base import UtcDateTime, count_rows, downgrade, make_engine, upgrade
from gpucommons.store.jobs import JobRow
from gpucommons.store.tenancy import ApiTokenRow, hash_token
from tests.service.conftest import T0, World


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _new_token(world: World, who: str, **body: object) -> dict[str, object]:
    response = world.client(who).post("/users/me/tokens", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


def test_list_shows_own_tokens_without_secrets(world: World) -> None:
    created = _new_token(world, "member", label="laptop")
    response = world.client("member").get("/tokens")
    assert response.status_code == 200
    listed = response.json()
    assert {t["user_id"] for t in listed} == {world.ids["member"]}
    laptop = next(t for t in listed if t["id"] == created["id"])
    assert laptop["label"] == "laptop" and laptop["user"] == "member" and laptop["state"] == "active"
    assert set(laptop) == {
        "id",
        "label",
        "user_id",
        "user",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "state",
        "current",
    }
    assert str(created["token"]) not in response.text and world.tokens["member"] not in response.text
    assert [t["current"] for t in listed].count(True) == 1  # the token this request carried


def test_admin_lists_everyones_and_filters_by_user(world: World) -> None:
    everyone = world.client("admin").get("/tokens").json()
    assert {t["user"] for t in everyone} >= {"admin", "reviewer", "pi", "member", "outsider"}
    one = world.client("admin").get("/tokens", params={"user_id": world.ids["pi"]}).json()
    assert {t["user_id"] for t in one} == {world.ids["pi"]}
    assert world.client("member").get("/tokens", params={"user_id": world.ids["pi"]}).json() == []


def test_revoked_token_gets_401_at_once_and_revoking_again_changes_nothing(world: World) -> None:
    created = _new_token(world, "member")
    token, token_id = str(created["token"]), created["id"]
    client = world.client(None)
    assert client.get("/users/me", headers=_bearer(token)).status_code == 200
    first = world.client("member").delete(f"/tokens/{token_id}")
    assert first.status_code == 200 and first.json()["state"] == "revoked"
    refused = client.get("/users/me", headers=_bearer(token))
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    world.clock.now += timedelta(minutes=5)
    again = world.client("admin").delete(f"/tokens/{token_id}")
    assert again.status_code == 200 and again.json()["revoked_at"] == first.json()["revoked_at"]
    assert world.client("member").get("/users/me").status_code == 200  # other tokens still work


def test_a_token_can_revoke_itself(world: World) -> None:
    created = _new_token(world, "member")
    client = world.client(None)
    headers = _bearer(str(created["token"]))
    assert client.delete(f"/tokens/{created['id']}", headers=headers).status_code == 200
    assert client.get("/tokens", headers=headers).status_code == 401


def test_someone_elses_token_is_not_found_and_stays_valid(world: World) -> None:
    created = _new_token(world, "member")
    response = world.client("pi").delete(f"/tokens/{created['id']}")
    assert (response.status_code, response.json()) == (404, {"detail": f"token {created['id']} not found"})
    missing = world.client("pi").delete("/tokens/999999")
    assert (missing.status_code, missing.json()) == (404, {"detail": "token 999999 not found"})
    assert world.client(None).get("/users/me", headers=_bearer(str(created["token"]))).status_code == 200


def test_user_tokens_expire_after_the_default_unless_told_otherwise(world: World) -> None:
    now = world.clock.now
    default = _new_token(world, "member")
    assert default["expires_at"] == (now + timedelta(days=90)).isoformat().replace("+00:00", "Z")
    week = _new_token(world, "member", expires_days=7)
    assert week["expires_at"] == (now + timedelta(days=7)).isoformat().replace("+00:00", "Z")
    both = world.client("member").post(
        "/users/me/tokens", json={"expires_days": 7, "expires_at": "2030-01-01T00:00:00Z"}
    )
    assert both.status_code == 422 and both.json()["detail"] == "give expires_at or expires_days, not both"
    for bad in (0, -1):
        assert world.client("member").post("/users/me/tokens", json={"expires_days": bad}).status_code == 422
    world.clock.now = now + timedelta(days=8)
    client = world.client(None)
    expired = client.get("/users/me", headers=_bearer(str(week["token"])))
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]
    assert client.get("/users/me", headers=_bearer(str(default["token"]))).status_code == 200


def test_default_expiry_is_a_setting_and_zero_means_none(world: World) -> None:
    world.app.state.settings.token_expiry_days = 0
    assert _new_token(world, "member")["expires_at"] is None
    world.app.state.settings.token_expiry_days = 30
    issued = world.client("admin").post(f"/users/{world.ids['pi']}/tokens", json={}).json()
    assert issued["expires_at"] == (world.clock.now + timedelta(days=30)).isoformat().replace("+00:00", "Z")


def _last_used(world: World, token_id: object) -> str | None:
    listed = world.client("admin").get("/tokens").json()
    value: str | None = next(t["last_used_at"] for t in listed if t["id"] == token_id)
    return value


def test_last_use_is_recorded_once_per_resolution(world: World) -> None:
    created = _new_token(world, "member")
    headers, token_id = _bearer(str(created["token"])), created["id"]
    assert _last_used(world, token_id) is None
    client = world.client(None)
    start = world.clock.now
    client.get("/users/me", headers=headers)
    assert _last_used(world, token_id) == start.isoformat().replace("+00:00", "Z")
    world.clock.now = start + timedelta(seconds=LAST_USED_RESOLUTION_S / 2)
    client.get("/users/me", headers=headers)
    assert _last_used(world, token_id) == start.isoformat().replace("+00:00", "Z")
    later = start + timedelta(seconds=LAST_USED_RESOLUTION_S * 2)
    world.clock.now = later
    refused = client.get("/users", headers=headers)  # a refused request still used the token
    assert refused.status_code == 403
    assert _last_used(world, token_id) == later.isoformat().replace("+00:00", "Z")


def test_only_a_hash_of_the_secret_is_stored(world: World) -> None:
    created = _new_token(world, "member")
    raw = str(created["token"])
    with world.app.state.sessions() as s:
        row = s.get(ApiTokenRow, created["id"])
        assert row is not None and row.token_sha256 == hashlib.sha256(raw.encode()).hexdigest()
        stored = [str(v) for r in s.execute(select(ApiTokenRow.__table__)).all() for v in r]
    assert not any(raw in v or raw.removeprefix("gpuc_") in v for v in stored)


# Priority classes and non-preemptible jobs --------------------------------------------------------------


def _job_count(world: World) -> int:
    with world.app.state.sessions() as s:
        return count_rows(s, JobRow)


@pytest.mark.parametrize(
    ("who", "fields", "want"),
    [
        ("member", {"priority_class": "high"}, 403),
        ("member", {"preemptible": False}, 403),
        ("member", {"priority_class": "high", "preemptible": False}, 403),
        ("member", {"priority_class": "low"}, 201),
        ("member", {"priority_class": "normal"}, 201),
        ("member", {"priority_class": "urgent"}, 422),
        ("pi", {"priority_class": "high", "preemptible": False}, 201),
        ("admin", {"priority_class": "high", "preemptible": False}, 201),
    ],
)
def test_privileged_jobs_are_for_admins_and_pis(
    world: World, who: str, fields: dict[str, object], want: int
) -> None:
    body = {"project": "alpha", "command": ["true"], **fields}
    response = world.client(who).post("/jobs", json=body)
    assert response.status_code == want, response.text
    if want == 201:
        job = response.json()
        assert (job["priority_class"], job["preemptible"]) == (
            fields.get("priority_class", "normal"),
            fields.get("preemptible", True),
        )
        assert _job_count(world) == 1
        return
    detail = response.json()["detail"]
    assert "\n" not in detail and _job_count(world) == 0
    if want == 403:
        assert "only admins and the project's PIs may" in detail
        asked = ("priority class 'high'" in detail, "non-preemptible" in detail)
        assert asked == ("priority_class" in fields, "preemptible" in fields)


# Migration ---------------------------------------------------------------------------------------------


def _token_columns(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {c["name"] for c in inspect(conn).get_columns("api_tokens")}
    finally:
        engine.dispose()


def test_migration_keeps_existing_tokens_valid_and_downgrades(db_url: str) -> None:
    upgrade(db_url, "0003")
    created = bindparam("t", T0, type_=UtcDateTime())
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, name, role, created_at) VALUES (1, 'old', 'user', :t)"
                ).bindparams(created)
            )
            conn.execute(
                text(
                    "INSERT INTO api_tokens (token_sha256, user_id, label, created_at) "
                    "VALUES (:h, 1, 'x', :t)"
                ).bindparams(created, h=hash_token("gpuc_old"))
            )
    finally:
        engine.dispose()
    upgrade(db_url, "0004_tokens")
    assert {"revoked_at", "last_used_at"} <= _token_columns(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT revoked_at, last_used_at FROM api_tokens WHERE token_sha256 = :h"),
                {"h": hash_token("gpuc_old")},
            ).one()
        assert tuple(row) == (None, None)  # the token stays valid: never revoked, not yet used
    finally:
        engine.dispose()
    downgrade(db_url, "0003")
    assert not {"revoked_at", "last_used_at"} & _token_columns(db_url)
