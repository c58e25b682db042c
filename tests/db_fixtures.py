"""Database fixtures shared by the store, service and CLI tests: every test that takes ``db_url`` runs
on a fresh, migrated SQLite file and, when ``GPUC_TEST_POSTGRES_URL`` is set (a server where the user
may create databases), again on a fresh PostgreSQL database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpucommons.store.base import upgrade
from gpucommons.store.scratch import scratch_postgres
from tests.components import require_component

POSTGRES_ENV = "GPUC_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL (not yet migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'gpuc.db'}"
        return
    admin_url = os.environ.get(POSTGRES_ENV)
    require_component(bool(admin_url), f"PostgreSQL ({POSTGRES_ENV})")
    assert admin_url is not None
    with scratch_postgres(admin_url, "gpuc_test_") as url:
        yield url


@pytest.fixture
def migrated_url(db_url: str) -> str:
    upgrade(db_url)
    return db_url
