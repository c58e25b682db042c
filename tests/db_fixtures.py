"""Database fixtures shared by the store, service and CLI tests: every test that takes ``db_url`` runs
on a fresh, migrated SQLite file and, when ``GPUC_TEST_POSTGRES_URL`` is set (a server where the user
may create databases), again on a fresh PostgreSQL database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpucommons.store.base import normalize_url, upgrade
from tests.components import require_component

POSTGRES_ENV = "GPUC_TEST_POSTGRES_URL"


def _postgres_database(admin_url: str) -> Iterator[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"gpuc_test_{uuid.uuid4().hex[:12]}"
    base = make_url(normalize_url(admin_url))
    dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL (not yet migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gpuc.db'}"
        return
    admin_url = os.environ.get(POSTGRES_ENV)
    require_component(bool(admin_url), f"PostgreSQL ({POSTGRES_ENV})")
    assert admin_url is not None
    yield from _postgres_database(admin_url)


@pytest.fixture
def migrated_url(db_url: str) -> str:
    upgrade(db_url)
    return db_url
