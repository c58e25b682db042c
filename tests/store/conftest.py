from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from gpucommons.store.base import make_engine, session_factory
from tests.db_fixtures import db_url, migrated_url

__all__ = ["db_url", "migrated_url", "session"]


@pytest.fixture
def session(migrated_url: str) -> Iterator[Session]:
    engine = make_engine(migrated_url)
    with session_factory(engine)() as db:
        yield db
    engine.dispose()
