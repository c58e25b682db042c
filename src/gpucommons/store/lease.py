"""The scheduler lease: a single row saying which scheduler may act, and until when.

Two servers on one database must never both launch jobs, so each scheduler cycle first takes or renews
the lease with a conditional UPDATE (atomic on SQLite and PostgreSQL). A lease that expired, or whose
holder was a process on this host that no longer exists (a server killed with -9 and restarted), may be
taken over at once. Holders are ``<host>:<pid>:<random>``.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gpucommons.store.jobs import SchedulerLeaseRow

LEASE_ID = 1


def new_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _holder_gone(holder: str) -> bool:
    """Whether ``holder`` names a process on this host that has exited."""
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


def acquire_lease(session: Session, holder: str, now: datetime, ttl_s: float) -> bool:
    """Take or renew the lease for ``ttl_s`` seconds; ``False`` if another live scheduler holds it.
    Flushes; the caller commits at once so the lease is visible to the others."""
    expires = now + timedelta(seconds=ttl_s)
    current = session.execute(
        select(SchedulerLeaseRow.holder).where(SchedulerLeaseRow.id == LEASE_ID)
    ).scalar()
    if current is None:
        try:
            with session.begin_nested():
                session.add(SchedulerLeaseRow(id=LEASE_ID, holder=holder, expires_at=expires))
        except IntegrityError:
            return False
        return True
    condition = (SchedulerLeaseRow.holder == holder) | (SchedulerLeaseRow.expires_at <= now)
    if current != holder and _holder_gone(current):
        condition = condition | (SchedulerLeaseRow.holder == current)
    result = session.execute(
        update(SchedulerLeaseRow)
        .where(SchedulerLeaseRow.id == LEASE_ID, condition)
        .values(holder=holder, expires_at=expires)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def release_lease(session: Session, holder: str) -> None:
    """Give the lease up (a clean shutdown) so another scheduler need not wait for it to expire."""
    session.execute(
        update(SchedulerLeaseRow)
        .where(SchedulerLeaseRow.id == LEASE_ID, SchedulerLeaseRow.holder == holder)
        .values(holder="", expires_at=datetime(1970, 1, 1, tzinfo=UTC))
        .execution_options(synchronize_session=False)
    )
