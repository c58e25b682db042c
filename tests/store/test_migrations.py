"""Migrations build the schema on both databases, match the ORM exactly, and tear down cleanly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from gpucommons.store.base import Base, downgrade, make_engine, upgrade

TABLES = {
    "institutions",
    "projects",
    "users",
    "memberships",
    "api_tokens",
    "programs",
    "proposals",
    "reviews",
    "awards",
    "reclaims",
}


def test_upgrade_creates_the_tables_and_matches_the_models(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diffs == []
    finally:
        engine.dispose()


def test_upgrade_is_idempotent_and_downgrade_drops_everything(migrated_url: str) -> None:
    upgrade(migrated_url)
    downgrade(migrated_url, "base")
    engine = make_engine(migrated_url)
    try:
        assert not TABLES & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/x.db")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()
