"""Declarative base, engine and session construction, and programmatic migrations.

Every table of the package (this part's and the jobs tables) hangs off ``Base``; the schema is created
only by Alembic (``upgrade``), never by ``Base.metadata.create_all``, so SQLite and PostgreSQL always
run the same migrations. Repositories flush; only routes and CLI commands commit.

It also holds what every repository shares: a row by id (404 when absent, in one wording the service
also gives a caller who may not see a row that exists), adding a row whose name must be new (409 when
taken), CHECK constraints for enumerated columns (``one_of``: plain strings, portable across SQLite and
PostgreSQL and easy to extend in a migration), whole-won money columns (``checked_won``), and the
conversion between stored UTC ``datetime``s and the policy's float seconds (``to_dt``, ``to_s``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    DateTime,
    Engine,
    MetaData,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import (
    DeclarativeBase,
    InstrumentedAttribute,
    Session,
    sessionmaker,
)
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from gpucommons.errors import ConfigError, ConflictError, InvalidRequestError, NotFoundError
from gpucommons.metering.pricing import whole_won

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


def one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def checked_won(key: str, value: int | float) -> int:
    """A money column's value as whole won (``2000.0`` becomes ``2000``); a fraction of a won or a
    negative amount is bad input, refused before anything is stored. Shared by every money column's
    ``validates`` hook so the row holds an ``int`` from the moment it is set."""
    try:
        return whole_won(value)
    except ValueError as exc:
        raise InvalidRequestError(f"{key}: {exc}") from None


def count_rows(session: Session, row_type: type[object]) -> int:
    """How many rows a table holds (used by tests and reports)."""
    return int(session.scalar(select(func.count()).select_from(row_type)) or 0)


RowT = TypeVar("RowT", bound=Base)


def not_found(what: str, row_id: int) -> NotFoundError:
    """The error for a missing row. The service also answers it, word for word, to a caller who may not
    see a row that exists, so a refusal does not tell them which ids exist."""
    return NotFoundError(f"{what} {row_id} not found")


def get_row(session: Session, row_type: type[RowT], row_id: int, what: str) -> RowT:
    row = session.get(row_type, row_id)
    if row is None:
        raise not_found(what, row_id)
    return row


def add_named(
    session: Session, row: RowT, name_column: InstrumentedAttribute[str], name: str, what: str
) -> RowT:
    """Add ``row`` after checking no row of its kind has ``name`` yet; flushes so its id is known."""
    if session.scalar(select(name_column).where(name_column == name)) is not None:
        raise ConflictError(f"{what} {name!r} already exists")
    session.add(row)
    session.flush()
    return row


def to_dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def to_s(at: datetime) -> float:
    return at.timestamp()
