"""Throwaway PostgreSQL databases: a new, empty database on a server, dropped when the block ends.

The tests run each case on one, and the benchmarks measure on one, so nothing they write outlives them
and two runs on one server never meet."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

from gpucommons.store.base import normalize_url


@contextmanager
def scratch_postgres(server_url: str, prefix: str) -> Iterator[str]:
    """The URL of a new database named ``prefix`` + a random suffix on the server of ``server_url``
    (whose user may create databases); dropped afterwards, with any session still open on it."""
    import psycopg  # the driver the package ships with; imported here, as SQLite needs none

    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    base = make_url(normalize_url(server_url))
    dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
