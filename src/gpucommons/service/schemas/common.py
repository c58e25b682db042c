"""Shared field types of every request: ids, counts, text and timestamps, each with the bound that keeps
bad input from reaching the database or the scheduler, and the error body every route documents.

Why bounds on everything: SQLite stores integers in 64 bits and PostgreSQL's ``integer`` (every id
column) in 32, even to compare; Python's ``datetime`` stops at year 9999, a ``seek`` at 2**63, and the
JSON encoder refuses NaN. Each of these used to turn a syntactically valid request into a 500 (or, for
a job command holding a NUL byte, into a scheduler that failed every cycle). A field typed with one of
the aliases below is refused with a 422 before any route code runs, and its bound is published in the
OpenAPI document.

- ``Id``: a row id, 1..2**31-1 (what both databases hold), in bodies, paths and queries alike.
- ``Gpus`` / ``Days`` / ``Fraction``: counts stored in 32-bit columns, with maxima no real request reaches.
- ``Line``: one line of text (names, models, labels): no control characters at all.
- ``Text``: free text (a script, an argv element, a justification): tabs and line breaks, no other
  control character; NUL never.
- ``Timestamp``: a timezone-aware instant between ``MIN_TIMESTAMP`` and ``MAX_TIMESTAMP``, so that
  adding a program's duration to it can never leave the calendar.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from annotated_types import Interval
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, Strict

MAX_ID = 2**31 - 1  # PostgreSQL's largest ``integer``: a larger id fails even a lookup there
MAX_GPUS = 1_000_000  # far above any pool, well inside a 32-bit column
MAX_DAYS = 3_650  # ten years: programs, reclaim windows
MAX_GPU_HOURS = 1e9
MAX_PRICE_KRW_PER_GPU_HOUR = 100_000_000
MAX_BONUS = 100.0  # review scores run 0..100
MAX_LOG_OFFSET = 2**53  # bytes; a seek far past any log, exact in every JSON reader
MAX_LINE = 200
MAX_TEXT = 20_000
MIN_TIMESTAMP = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIMESTAMP = datetime(9000, 1, 1, tzinfo=UTC)

# Characters refused in text. One line: every C0 control character, DEL and the C1 controls. Free text
# keeps tab, line feed and carriage return. The same sets, as JSON-schema patterns, tell generated
# clients (and fuzzers) what is accepted.
_LINE_REFUSED = "".join(map(chr, [*range(0x20), *range(0x7F, 0xA0)]))
_TEXT_REFUSED = "".join(chr(c) for c in [*range(0x20), 0x7F] if chr(c) not in "\t\n\r")
LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


def _refuse(refused: str, what: str) -> Any:
    table = dict.fromkeys(map(ord, refused))

    def check(value: str) -> str:
        if value.translate(table) != value:
            bad = next(c for c in value if c in refused)
            raise ValueError(f"{what} must not contain control character U+{ord(bad):04X}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{what} is not valid Unicode text (lone surrogate)") from None
        return value

    return AfterValidator(check)


def _in_calendar(value: datetime) -> datetime:
    try:
        inside = MIN_TIMESTAMP <= value.astimezone(UTC) < MAX_TIMESTAMP
    except OverflowError:  # year 1 or 9999 shifted by its offset leaves the calendar
        inside = False
    if not inside:
        raise ValueError(
            f"must lie between {MIN_TIMESTAMP.date().isoformat()} and {MAX_TIMESTAMP.date().isoformat()}"
        )
    return value


Id = Annotated[int, Interval(ge=1, le=MAX_ID)]
IdKey = Annotated[Id, Strict(False)]  # an id as a JSON object key, which is always text
Gpus = Annotated[int, Interval(ge=1, le=MAX_GPUS)]
GpusOrZero = Annotated[int, Interval(ge=0, le=MAX_GPUS)]
Days = Annotated[int, Interval(ge=1, le=MAX_DAYS)]
Fraction = Annotated[float, Interval(ge=0.0, le=1.0)]
Line = Annotated[
    str,
    _refuse(_LINE_REFUSED, "text"),
    Field(max_length=MAX_LINE, json_schema_extra={"pattern": LINE_PATTERN}),
]
Name = Annotated[Line, Field(min_length=1)]
Text = Annotated[str, _refuse(_TEXT_REFUSED, "text"), Field(json_schema_extra={"pattern": TEXT_PATTERN})]
Timestamp = Annotated[
    AwareDatetime,
    Strict(False),  # JSON carries an instant as text
    AfterValidator(_in_calendar),
    Field(description=f"ISO 8601 with a timezone, from {MIN_TIMESTAMP.year} to before {MAX_TIMESTAMP.year}"),
]


class In(BaseModel):
    """Base of request bodies: unknown fields are refused; a value must have the type the schema
    states (``0`` is no boolean, ``"8"`` no count); and NaN and infinities are refused (JSON has
    neither, yet Python's parser reads them, and the response encoder would then fail)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class Out(BaseModel):
    """Base of response bodies, read from ORM rows."""

    model_config = ConfigDict(from_attributes=True)


class ErrorRead(BaseModel):
    """Every error response: one line a person can act on. The ``Gpuc-Error`` header names the class of
    ``gpucommons.errors`` it stands for."""

    detail: str
