"""The scheduler lease: a single row saying which scheduler may act, until when, and in which epoch.
The award lifecycle's timer (``service/lifecycle.py``) holds a second lease of the same kind, row
``LIFECYCLE_LEASE_ID``, so it may run on another server than the scheduler; each function takes the
row it acts on (``lease_id``, the scheduler's by default).

Two servers on one database must never both act, so:

- Expiry is judged by the database's clock (``db_now``), never by a host's: a scheduler whose host
  clock runs ahead cannot take a lease early, and every holder's deadline is one clock's reading.
- Each takeover bumps ``epoch``, a fencing token. ``acquire_lease`` returns a ``Lease`` (holder, epoch);
  ``hold_lease`` renews it in the caller's transaction only ``WHERE holder = :me AND epoch = :mine``,
  and raises ``LeaseLostError`` when that matches nothing. The scheduler calls it in the same
  transaction as each of its writes, so the writes commit only if the lease was still its own at that
  moment: the UPDATE holds the lease row (a row lock on PostgreSQL, the write lock on SQLite) until the
  commit, so no takeover can slip in between the check and the commit. A holding whose time ran out
  but that no one took over may still be renewed: every takeover bumps the epoch in one atomic UPDATE,
  so an unchanged epoch proves no other scheduler acted meanwhile (and a cycle that outlasts the TTL is
  not rolled back for nothing, again and again).
- A lease whose holder was a process on this host that no longer exists (a server killed with -9 and
  restarted) may be taken over at once. Holders are ``<host>:<pid>:<random>``.

The scheduler renews the lease for ``ttl + the longest backend call`` before each backend call (an
``sbatch`` may take its whole timeout), so it cannot expire while a launch is on its way.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    String,
    case,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql.functions import FunctionElement

from gpucommons.engine.ports import Lease, LeaseLostError
from gpucommons.store.base import Base, UtcDateTime


class SchedulerLeaseRow(Base):
    """One row per lease (``id``: ``LEASE_ID``, the scheduler's; ``LIFECYCLE_LEASE_ID``): who may act,
    until when (by the database's clock), and the ``epoch`` of its holding: a fencing token bumped at
    every takeover (``store/lease.py``)."""

    __tablename__ = "scheduler_lease"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


LEASE_ID = 1
LIFECYCLE_LEASE_ID = 2  # the award lifecycle's timer (design note 0012)
LEASE_NAMES = {LEASE_ID: "scheduler", LIFECYCLE_LEASE_ID: "lifecycle"}


class db_time(FunctionElement[datetime]):
    """The database's clock now plus ``offset_s`` seconds, as a UTC timestamp comparable with stored
    ``UtcDateTime`` columns: ``clock_timestamp()`` on PostgreSQL (the real time, not the transaction's
    start), and on SQLite the text form SQLAlchemy stores timestamps in (``YYYY-MM-DD HH:MM:SS.ffffff``,
    UTC), so comparisons are exact string comparisons."""

    type = UtcDateTime()
    inherit_cache = True
    name = "db_time"

    def __init__(self, offset_s: float = 0.0) -> None:
        super().__init__(literal(float(offset_s), Float()))


@compiles(db_time)
def _db_time_default(element: db_time, compiler: Any, **kw: Any) -> str:
    offset = compiler.process(element.clauses, **kw)
    return f"(CURRENT_TIMESTAMP + {offset} * INTERVAL '1 second')"


@compiles(db_time, "postgresql")
def _db_time_postgresql(element: db_time, compiler: Any, **kw: Any) -> str:
    offset = compiler.process(element.clauses, **kw)
    return f"(clock_timestamp() + CAST({offset} AS DOUBLE PRECISION) * INTERVAL '1 second')"


@compiles(db_time, "sqlite")
def _db_time_sqlite(element: db_time, compiler: Any, **kw: Any) -> str:
    offset = compiler.process(element.clauses, **kw)
    return f"strftime('%Y-%m-%d %H:%M:%f000', 'now', ({offset}) || ' seconds')"


def db_now() -> db_time:
    """The database's clock now (see ``db_time``)."""
    return db_time(0.0)


def read_db_now(session: Session) -> datetime:
    """The database's clock, read once (for figures; comparisons belong in SQL)."""
    value: datetime | None = session.scalar(select(db_now()))
    if value is None:  # pragma: no cover - every database answers
        raise RuntimeError("the database returned no time")
    return value


def _holder_gone(holder: str) -> bool:
    """Whether ``holder`` names a process on this host that has exited (``ports.new_holder``)."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def acquire_lease(session: Session, holder: str, ttl_s: float, *, lease_id: int = LEASE_ID) -> Lease | None:
    """Take or renew the lease until ``ttl_s`` seconds from now by the database's clock; ``None`` if
    another live scheduler holds it. Renewing keeps the epoch (even after the lease ran out, as long as
    no one else took it: the holder is still ``holder``); taking it over (an expired lease, a dead
    holder's, or one released) bumps it. The caller commits at once so the others see it."""
    current = session.execute(
        select(SchedulerLeaseRow.holder).where(SchedulerLeaseRow.id == lease_id)
    ).scalar()
    if current is None:
        try:
            with session.begin_nested():
                session.execute(
                    insert(SchedulerLeaseRow).values(
                        id=lease_id, holder=holder, expires_at=db_time(ttl_s), epoch=1
                    )
                )
        except IntegrityError:
            return None
        return Lease(holder, 1)
    mine = SchedulerLeaseRow.holder == holder
    condition: ColumnElement[bool] = mine | (SchedulerLeaseRow.expires_at <= db_now())
    if current != holder and _holder_gone(current):
        condition = condition | (SchedulerLeaseRow.holder == current)
    epoch = session.execute(
        update(SchedulerLeaseRow)
        .where(SchedulerLeaseRow.id == lease_id, condition)
        .values(
            holder=holder,
            expires_at=db_time(ttl_s),
            epoch=case((mine, SchedulerLeaseRow.epoch), else_=SchedulerLeaseRow.epoch + 1),
        )
        .returning(SchedulerLeaseRow.epoch)
        .execution_options(synchronize_session=False)
    ).scalar()
    return None if epoch is None else Lease(holder, int(epoch))


def hold_lease(session: Session, lease: Lease, ttl_s: float, *, lease_id: int = LEASE_ID) -> None:
    """The fence: renew ``lease`` until ``ttl_s`` from now, in the caller's transaction, only if it is
    still this holding (same holder, same epoch: no one took it over since); else raise
    ``LeaseLostError``. Call it in the transaction of the writes it guards, before committing them."""
    renewed = session.execute(
        update(SchedulerLeaseRow)
        .where(
            SchedulerLeaseRow.id == lease_id,
            SchedulerLeaseRow.holder == lease.holder,
            SchedulerLeaseRow.epoch == lease.epoch,
        )
        .values(expires_at=db_time(ttl_s))
        .execution_options(synchronize_session=False)
    )
    if getattr(renewed, "rowcount", 0) != 1:
        what = LEASE_NAMES.get(lease_id, str(lease_id))
        raise LeaseLostError(f"{what} lease epoch {lease.epoch} is no longer held by {lease.holder}")


def release_lease(session: Session, holder: str, *, lease_id: int = LEASE_ID) -> None:
    """Give the lease up (a clean shutdown) so another scheduler need not wait for it to expire."""
    session.execute(
        update(SchedulerLeaseRow)
        .where(SchedulerLeaseRow.id == lease_id, SchedulerLeaseRow.holder == holder)
        .values(holder="", expires_at=datetime(1970, 1, 1, tzinfo=UTC))
        .execution_options(synchronize_session=False)
    )
