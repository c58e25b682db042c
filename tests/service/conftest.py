"""An in-process service with a movable clock and one user per role:
admin, reviewer, the PI and a member of project ``alpha``, an outsider (PI of project ``beta``),
plus an expired token. ``world.client(role)`` gives an authenticated ``TestClient``;
``world.cli_as`` points CLI commands at the service."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import pytest
from fastapi import FastAPI

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from fastapi.testclient import TestClient

from gpucommons.client import GpucClient
from gpucommons.config import Settings
from gpucommons.service.app import create_app
from gpucommons.store.tenancy import (
    create_institution,
    create_project,
    create_token,
    create_user,
    set_membership,
)
from tests.db_fixtures import db_url, migrated_url

__all__ = ["db_url", "migrated_url", "world"]

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    app: FastAPI
    clock: Clock
    tokens: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    _clients: list[TestClient] = field(default_factory=list)

    def client(self, who: str | None) -> TestClient:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        client = TestClient(self.app, headers=headers)
        self._clients.append(client)
        return client

    def cli_as(self, monkeypatch: pytest.MonkeyPatch, who: str, *modules: ModuleType) -> None:
        """Point the ``make_client`` of each CLI module in ``modules`` at this service, as ``who``."""

        def make() -> GpucClient:
            return GpucClient("http://testserver", self.tokens[who], http=self.client(None))

        for module in modules:
            monkeypatch.setattr(module, "make_client", make)


def _seed(app: FastAPI) -> World:
    world = World(app=app, clock=app.state.clock)
    with app.state.sessions() as s:
        kaist = create_institution(s, "KAIST", "university", "non_capital")
        startup = create_institution(s, "Seoul AI", "startup", "capital", youth_startup=True)
        alpha = create_project(s, "alpha", kaist.id)
        beta = create_project(s, "beta", startup.id)
        world.ids.update(kaist=kaist.id, startup=startup.id, alpha=alpha.id, beta=beta.id)
        for name, role in (("admin", "admin"), ("reviewer", "reviewer"), ("pi", "user"), ("member", "user")):
            user = create_user(s, name, role)
            world.ids[name] = user.id
            world.tokens[name] = create_token(s, user.id, T0)[1]
        outsider = create_user(s, "outsider", "user")
        world.ids["outsider"] = outsider.id
        world.tokens["outsider"] = create_token(s, outsider.id, T0)[1]
        world.tokens["expired"] = create_token(s, outsider.id, T0, T0 + timedelta(hours=1))[1]
        set_membership(s, alpha.id, world.ids["pi"], "pi")
        set_membership(s, alpha.id, world.ids["member"], "member")
        set_membership(s, beta.id, outsider.id, "pi")
        s.commit()
    world.tokens["unknown"] = "gpuc_not-a-real-token"
    return world


@pytest.fixture
def world(migrated_url: str, tmp_path: Path) -> Iterator[World]:
    app = create_app(Settings(home=tmp_path, database_url=migrated_url), clock=Clock(), migrate=False)
    w = _seed(app)
    w.clock.now = T0 + timedelta(hours=2)  # the "expired" token is now past its expiry
    yield w
    for client in w._clients:
        client.close()
    app.state.engine.dispose()
