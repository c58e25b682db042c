"""Fixtures of the backend tests: a work root jobs can reach, and the databases for end-to-end tests.

A job of the local backend runs under its own uid when the tests run as root, so its work directory
cannot live under pytest's ``tmp_path`` (inside a 0700 directory of the test user): ``work_root`` is
a fresh directory in the system's temporary directory, mode 0711 like the backend's own, removed after.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.components import require_component
from tests.db_fixtures import db_url, migrated_url

__all__ = ["db_url", "migrated_url", "needs_root", "work_root"]


@pytest.fixture
def work_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="gpuc-test-work-"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def needs_root() -> None:
    """The uid part of job isolation can only be shown as root (CI runs as root; elsewhere it skips)."""
    require_component(os.geteuid() == 0, "root (jobs under their own uids)")
