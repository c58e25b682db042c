from __future__ import annotations

from tests.db_fixtures import db_url, migrated_url
from tests.service.conftest import world

__all__ = ["db_url", "migrated_url", "world"]
