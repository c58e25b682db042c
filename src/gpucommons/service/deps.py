"""Request-scoped dependencies shared by every route: a database session and the service clock.

The clock lives on ``app.state.clock`` so tests can move time (token expiry, award expiry) without
sleeping; routes take ``now`` from here instead of reading the wall clock themselves.

Both are ``async`` because FastAPI runs every plain (``def``) dependency in a worker thread, and that
hand-off to a thread and back costs the event loop about as much as a submission's database work; only
what may block on the database goes to a thread: closing a session that still holds a connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request; the route commits, anything not committed is rolled back on close.

    Creating a session touches no database. Closing one that is inside a transaction (a read, or a
    route that failed) rolls back and returns its connection, which may block, so it runs in a
    thread; after a commit there is nothing to give back and it closes here."""
    factory: sessionmaker[Session] = request.app.state.sessions
    session = factory()
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


async def get_now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


SessionDep = Annotated[Session, Depends(get_session)]
NowDep = Annotated[datetime, Depends(get_now)]
