"""The scheduler lease on both databases: epochs as fencing tokens, expiry by the database's clock, and
the fence that renews a holding only while it is still the same one."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from gpucommons.engine.ports import Lease, LeaseLostError
from gpucommons.store.lease import (
    SchedulerLeaseRow,
    acquire_lease,
    hold_lease,
    read_db_now,
    release_lease,
)
from tests.components import wait_until


def expire(session: Session) -> None:
    session.execute(update(SchedulerLeaseRow).values(expires_at=datetime(2000, 1, 1, tzinfo=UTC)))
    session.commit()


def stored(session: Session) -> SchedulerLeaseRow:
    session.expire_all()
    row = session.get(SchedulerLeaseRow, 1)
    assert row is not None
    return row


def test_renewing_keeps_the_epoch_and_each_takeover_bumps_it(session: Session) -> None:
    assert acquire_lease(session, "a:1:x", 30.0) == Lease("a:1:x", 1)
    session.commit()
    assert acquire_lease(session, "a:1:x", 30.0) == Lease("a:1:x", 1)
    assert acquire_lease(session, "b:1:y", 30.0) is None  # held and live
    session.commit()
    expire(session)
    assert acquire_lease(session, "b:1:y", 30.0) == Lease("b:1:y", 2)
    session.commit()
    release_lease(session, "b:1:y")
    session.commit()
    assert acquire_lease(session, "a:1:x", 30.0) == Lease("a:1:x", 3)  # even the old holder: a new epoch


def test_a_lease_that_ran_out_but_was_not_taken_is_renewed_in_its_epoch(session: Session) -> None:
    first = acquire_lease(session, "a:1:x", 30.0)
    session.commit()
    expire(session)
    assert acquire_lease(session, "a:1:x", 30.0) == first  # no one else held it meanwhile


def test_the_fence_holds_only_the_same_holding(session: Session) -> None:
    mine = acquire_lease(session, "a:1:x", 30.0)
    assert mine is not None
    session.commit()
    hold_lease(session, mine, 60.0)
    session.commit()
    left = stored(session).expires_at - read_db_now(session)
    assert timedelta(seconds=55) < left <= timedelta(seconds=60)
    expire(session)
    hold_lease(session, mine, 60.0)  # ran out, but no one took it: no one else acted, so it still holds
    session.commit()
    expire(session)
    theirs = acquire_lease(session, "b:1:y", 30.0)
    assert theirs is not None
    session.commit()
    with pytest.raises(LeaseLostError, match="epoch 1"):
        hold_lease(session, mine, 60.0)
    session.rollback()
    hold_lease(session, theirs, 60.0)


def test_expiry_is_read_from_the_database_clock(session: Session) -> None:
    """A 0.3 s lease is live right away and may be taken over once the database's clock passes it
    (SQLite keeps timestamps as text: the comparison must hold to the fraction of a second)."""
    assert acquire_lease(session, "a:1:x", 0.3) is not None
    session.commit()
    assert acquire_lease(session, "b:1:y", 30.0) is None
    session.commit()

    def take_over() -> Lease | None:
        taken = acquire_lease(session, "b:1:y", 30.0)
        if taken is None:
            session.commit()
        return taken

    assert wait_until(take_over, 10.0, "the lease never expired") == Lease("b:1:y", 2)
    assert stored(session).expires_at - read_db_now(session) > timedelta(seconds=25)


def test_a_dead_local_holder_is_taken_over_at_once(session: Session) -> None:
    dead = f"{socket.gethostname()}:{2**22 + 12345}:gone"  # a pid above Linux's pid_max: never alive
    assert acquire_lease(session, dead, 600.0) is not None
    session.commit()
    assert acquire_lease(session, "b:1:y", 30.0) == Lease("b:1:y", 2)
