"""Declarative base, engine and session construction, and programmatic migrations.

Every table of the package (this part's and the jobs tables) hangs off ``Base``; the schema is created
only by Alembic (``upgrade``), never by ``Base.metadata.create_all``, so SQLite and PostgreSQL always
run the same migrations. Repositories flush; only routes and CLI commands commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from gpucommons.errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 5000
# Connections kept open per engine: the API serves requests from a thread pool, and a connection opened
# beyond the pool is closed after one request, paying connect and pragmas again each time.
POOL_SIZE = 16
POOL_MAX_OVERFLOW = 32

# Stable constraint names so migrations can alter them on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of every ORM row (names end in ``Row``)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both databases.

    SQLite drops the offset, so values are normalised to UTC on the way in and tagged UTC on the way out;
    naive datetimes are refused because their zone is a guess.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The wall clock in UTC; only edges (routes, CLI, the live engine) should call it."""
    return datetime.now(UTC)


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as the psycopg 3 driver the package ships with."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL syncs at checkpoints instead of at every commit: a power cut may lose the last
    # commits but never corrupts the database, and a commit costs a WAL append instead of an fsync.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _ensure_directory(database: Path) -> None:
    """A SQLite file's folder is created on first use (a new ``GPUC_HOME``), like the file itself."""
    try:
        database.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the database folder {database.parent}: {exc.strerror}") from None


def make_engine(url: str) -> Engine:
    """An engine for SQLite (WAL, foreign keys, busy timeout; usable from the server's threads) or
    PostgreSQL through psycopg 3."""
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(f"invalid database URL {url!r}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        if parsed.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool  # one shared connection, or each would see an empty db
        else:
            kwargs.update(pool_size=POOL_SIZE, max_overflow=POOL_MAX_OVERFLOW)
            _ensure_directory(Path(parsed.database))
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=POOL_MAX_OVERFLOW)
    raise ConfigError(f"unsupported database {parsed.get_backend_name()!r}; use sqlite or postgresql")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded rows readable after commit (routes serialise after committing)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at the packaged migrations; the URL travels in ``attributes`` so a
    password with ``%`` needs no escaping."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("gpucommons.store") / "migrations"))
    config.attributes["database_url"] = normalize_url(url)
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (default: the newest)."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Step the database at ``url`` back to ``revision`` (``base`` drops everything)."""
    command.downgrade(alembic_config(url), revision)
