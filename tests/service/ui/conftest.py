"""The dashboard's tests run on SQLite only: its pages call the API's route functions and the store,
whose queries the API's and the store's own tests run on SQLite and PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """An empty SQLite database (the ``world`` fixture migrates it)."""
    return f"sqlite:///{tmp_path / 'gpuc.db'}"
