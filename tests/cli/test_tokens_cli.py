"""``gpuc token create|list|revoke`` against an in-process server, their one-line errors, and ``gpuc up``
keeping the admin token it stored while the database still accepts it."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from gpucommons.cli import admin, app, tokens
from gpucommons.cli.credentials import Credentials, credentials_path, save_credentials
from gpucommons.config import Settings
from gpucommons.service.bootstrap import AdminToken, bootstrap
from gpucommons.store.base import make_engine, session_factory, utcnow
from gpucommons.store.tenancy import ApiTokenRow, UserRow, create_token, create_user
from tests.service.conftest import World

runner = CliRunner()


def _as(monkeypatch: pytest.MonkeyPatch, world: World, who: str) -> None:
    world.cli_as(monkeypatch, who, admin, tokens)


def _ok(*args: str) -> str:
    result = runner.invoke(app.app, list(args))
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def _listed(*args: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads(_ok("token", "list", "--json", *args))
    return rows


def test_create_list_revoke(monkeypatch: pytest.MonkeyPatch, world: World) -> None:
    _as(monkeypatch, world, "member")
    raw = _ok("token", "create", "--expires-days", "7", "--label", "ci").strip()
    assert raw.startswith("gpuc_")
    [ci] = [t for t in _listed() if t["label"] == "ci"]
    want_expiry = (world.clock.now + timedelta(days=7)).isoformat().replace("+00:00", "Z")
    assert (ci["state"], ci["user"], ci["expires_at"]) == ("active", "member", want_expiry)
    table = _ok("token", "list")
    assert "ci" in table and raw not in table
    assert f"token {ci['id']} (ci, user member) revoked" in _ok("token", "revoke", str(ci["id"]))
    assert [t["state"] for t in _listed() if t["id"] == ci["id"]] == ["revoked"]
    refused = world.client(None).get("/users/me", headers={"Authorization": f"Bearer {raw}"})
    assert refused.status_code == 401


def test_admin_issues_for_a_user_with_expiry_and_lists_theirs(
    monkeypatch: pytest.MonkeyPatch, world: World
) -> None:
    _as(monkeypatch, world, "admin")
    pi = str(world.ids["pi"])
    _ok("admin", "user", "token", "--user", pi, "--expires-days", "3", "--label", "first login")
    [issued] = [t for t in _listed("--user", pi) if t["label"] == "first login"]
    assert issued["user_id"] == world.ids["pi"]
    assert issued["expires_at"] == (world.clock.now + timedelta(days=3)).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(
    ("args", "want"),
    [
        (["token", "revoke", "{admin_token}"], "error: token {admin_token} not found"),
        (["token", "revoke", "999999"], "error: token 999999 not found"),
        (
            ["token", "create", "--expires-days", "3", "--expires-at", "2030-01-01"],
            "error: give --expires-days or --expires-at, not both",
        ),
    ],
)
def test_errors_are_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch,
    world: World,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    want: str,
) -> None:
    _as(monkeypatch, world, "member")
    with world.app.state.sessions() as s:
        admin_token = s.scalar(select(ApiTokenRow.id).where(ApiTokenRow.user_id == world.ids["admin"]))
    filled = [a.format(admin_token=admin_token) for a in args]
    monkeypatch.setattr(sys, "argv", ["gpuc", *filled])
    with pytest.raises(SystemExit) as exit_info:
        app.main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == want.format(admin_token=admin_token)


# gpuc up --------------------------------------------------------------------------------------------------


def _admin_tokens(url: str) -> list[ApiTokenRow]:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            admin_id = s.scalar(select(UserRow.id).where(UserRow.name == "admin"))
            query = select(ApiTokenRow).where(ApiTokenRow.user_id == admin_id).order_by(ApiTokenRow.id)
            return list(s.scalars(query))
    finally:
        engine.dispose()


def _change(url: str, token_id: int, **values: object) -> None:
    engine = make_engine(url)
    try:
        with session_factory(engine)() as s:
            row = s.get(ApiTokenRow, token_id)
            assert row is not None
            for key, value in values.items():
                setattr(row, key, value)
            s.commit()
    finally:
        engine.dispose()


def _start(settings: Settings) -> AdminToken:
    """What ``gpuc up`` does with the token before serving: bootstrap, then store the credentials."""
    token = bootstrap(settings, empty=True)
    save_credentials(settings.home, Credentials("http://127.0.0.1:8080", token.token, token.user))
    return token


def test_up_reuses_the_stored_admin_token_while_valid(db_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    first = _start(settings)
    assert not first.reused and first.user == "admin"
    again = _start(settings)
    assert again == AdminToken(first.token, "admin", reused=True)
    [row] = _admin_tokens(db_url)
    assert row.expires_at is None  # the admin token does not expire unless asked

    _change(db_url, row.id, revoked_at=utcnow())
    after_revoke = _start(settings)
    assert not after_revoke.reused and after_revoke.token != first.token

    [_, current] = _admin_tokens(db_url)
    _change(db_url, current.id, expires_at=utcnow() - timedelta(seconds=1))
    after_expiry = _start(settings)
    assert not after_expiry.reused and len(_admin_tokens(db_url)) == 3

    credentials_path(settings.home).write_text("{not json")
    assert not _start(settings).reused


def test_up_does_not_reuse_a_stored_token_of_a_non_admin(db_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    _start(settings)
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as s:
            alice = create_user(s, "alice")
            _, raw = create_token(s, alice.id, utcnow())
            s.commit()
    finally:
        engine.dispose()
    save_credentials(settings.home, Credentials("http://127.0.0.1:8080", raw, "alice"))
    started = _start(settings)
    assert not started.reused and started.user == "admin" and started.token != raw


def test_up_issues_an_expiring_admin_token_when_asked(db_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=db_url)
    before = utcnow()
    bootstrap(settings, empty=True, token_expires_days=30)
    [row] = _admin_tokens(db_url)
    assert row.expires_at is not None
    assert timedelta(days=30) <= row.expires_at - before < timedelta(days=30, minutes=5)
