"""Alembic environment: runs online against the URL passed by ``gpucommons.store.base.upgrade``."""

from __future__ import annotations

from alembic import context

import gpucommons.store.arrays
import gpucommons.store.awards
import gpucommons.store.calls
import gpucommons.store.job_events
import gpucommons.store.jobs
import gpucommons.store.lease
import gpucommons.store.nodes
import gpucommons.store.notices
import gpucommons.store.reservations
import gpucommons.store.targets
import gpucommons.store.tenancy
import gpucommons.store.usage  # noqa: F401  (register the tables on Base.metadata)
from gpucommons.store.base import Base, make_engine

target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = context.config.attributes.get("database_url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL given to the migrations")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


run_migrations_online()
