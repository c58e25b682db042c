"""What every client-side command group shares: building the API client from the environment and
printing results as a table (or JSON with ``--json``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from gpucommons.client import GpucClient
from gpucommons.config import Settings
from gpucommons.errors import InvalidRequestError

console = Console(highlight=False, soft_wrap=True)


def make_client() -> GpucClient:
    """The client for this invocation: ``GPUC_URL``/``GPUC_TOKEN`` or ``GPUC_HOME/credentials.json``.
    Tests replace this function to talk to an in-process app."""
    return GpucClient.from_env(Settings().home)


def parse_time(value: str, option: str) -> datetime:
    """An ISO 8601 time from the command line; a bare date or a time without offset is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequestError(f"{option}: {value!r} is not an ISO 8601 date or time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _cell(value: object) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if value is None:
        return "-"
    return str(value)


def show(rows: Sequence[BaseModel] | BaseModel, columns: Sequence[str], as_json: bool = False) -> None:
    """Print one object or a list as a table with the given columns, or every field as JSON."""
    items = [rows] if isinstance(rows, BaseModel) else list(rows)
    if as_json:
        data = [r.model_dump(mode="json") for r in items]
        console.print_json(json.dumps(data[0] if isinstance(rows, BaseModel) else data))
        return
    table = Table(*columns, show_edge=False)
    for row in items:
        table.add_row(*(_cell(getattr(row, c)) for c in columns))
    console.print(table)


def show_record(row: BaseModel, fields: Sequence[str], as_json: bool = False) -> None:
    """Print one object field by field, one per line (too many fields for a table's width), or every
    field as JSON."""
    if as_json:
        console.print_json(json.dumps(row.model_dump(mode="json")))
        return
    table = Table("field", "value", show_edge=False, show_header=False)
    for name in fields:
        table.add_row(name, _cell(getattr(row, name)))
    console.print(table)
