"""Lookups every repository needs: a row by id (404 when absent), and adding a row
whose name must be new (409 when taken). One place for the wording of those errors."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import InstrumentedAttribute, Session

from gpucommons.errors import ConflictError, NotFoundError
from gpucommons.store.base import Base

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
