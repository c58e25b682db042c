"""Request-scoped dependencies shared by every route: a database session and the service clock.

The clock lives on ``app.state.clock`` so tests can move time (token expiry, award expiry) without
sleeping; routes take ``now`` from here instead of reading the wall clock themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; the route commits, anything not committed is rolled back on close."""
    factory: sessionmaker[Session] = request.app.state.sessions
    with factory() as session:
        yield session


def get_now(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


SessionDep = Annotated[Session, Depends(get_session)]
NowDep = Annotated[datetime, Depends(get_now)]
