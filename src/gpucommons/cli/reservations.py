"""``gpuc reserve create|list|show|cancel``: whole nodes of one model held for a project from a start
for a duration, once or repeating (design note 0016, "Reservations in the service"). Admins reserve for
any project, a project's PIs for their own within its awards. Times are read and printed in UTC, as
every command does (``--start 2027-01-05T14:00`` is 14:00 UTC)."""

from __future__ import annotations

import json
import re
from typing import Annotated

import typer
from rich.table import Table

from gpucommons.cli.common import console, make_client, parse_time
from gpucommons.errors import InvalidRequestError
from gpucommons.service.schemas.reservations import ReservationRead

app = typer.Typer(
    no_args_is_help=True, help="Reservations: whole nodes held for a project at a planned time."
)
_UNITS_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
IdArg = Annotated[int, typer.Argument(help="the reservation's id")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def parse_span(text: str, option: str) -> int:
    """Whole seconds from ``90s``, ``30m``, ``24h``, ``7d``, ``1d12h`` or ``3600``."""
    value = text.strip().lower()
    if re.fullmatch(r"\d+", value):
        seconds = int(value)
    elif re.fullmatch(r"(\d+[smhd])+", value):
        seconds = sum(int(n) * _UNITS_S[u] for n, u in re.findall(r"(\d+)([smhd])", value))
    else:
        raise InvalidRequestError(
            f"{option}: {text!r} is not a duration; use e.g. 90s, 30m, 24h, 7d or 1d12h"
        )
    if seconds <= 0:
        raise InvalidRequestError(f"{option}: {text!r} must be more than 0 s")
    return seconds


def span_text(seconds: int) -> str:
    """``1d12h``, ``24h`` shown as ``1d``, ``90m`` as ``1h30m``: the largest units first."""
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def _at(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value is not None else "-"


def _repeats(r: ReservationRead) -> str:
    if r.every_s is None:
        return "once"
    times = f" x{r.occurrences}" if r.occurrences is not None else ", without end"
    return f"every {span_text(r.every_s)}{times}"


def _where(r: ReservationRead) -> str:
    where = {"": "", "nvlink": ", in one NVLink domain", "block": ", in one network block"}[r.within]
    return where + (", idle GPUs lent" if r.lend_idle else "")


@app.command("create")
def create(
    project: Annotated[str, typer.Option(help="the project (name or id) the GPUs are held for")],
    gpus: Annotated[int, typer.Option(help="GPUs, in whole nodes of the model")],
    model: Annotated[str, typer.Option(help="the accelerator model, e.g. H200")],
    start: Annotated[str, typer.Option(help="ISO 8601 start, e.g. 2027-01-05T14:00 (UTC without offset)")],
    duration: Annotated[str, typer.Option(help="how long each occurrence lasts, e.g. 24h, 6h, 2d")],
    every: Annotated[str | None, typer.Option(help="repeat every, e.g. 1d, 7d (at least 1h)")] = None,
    occurrences: Annotated[
        int | None, typer.Option(help="how many times (with --every; none: no end)")
    ] = None,
    within: Annotated[str, typer.Option(help="nvlink or block: inside one NVLink domain or block")] = "",
    lend_idle: Annotated[
        bool, typer.Option("--lend-idle", help="let short preemptible jobs of others use idle reserved GPUs")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Reserve whole nodes: gpuc reserve create --project P --gpus 1024 --model H200 --start
    2027-01-05T14:00 --duration 24h [--every 7d --occurrences 4] [--within nvlink|block] [--lend-idle]"""
    if within not in ("", "nvlink", "block"):
        raise InvalidRequestError(f"--within: {within!r} is neither nvlink nor block")
    fields: dict[str, object] = {
        "project": project,
        "model": model,
        "gpus": gpus,
        "start_at": parse_time(start, "--start"),
        "duration_s": parse_span(duration, "--duration"),
        "within": within,
        "lend_idle": lend_idle,
    }
    if every is not None:
        fields["every_s"] = parse_span(every, "--every")
    if occurrences is not None:
        fields["occurrences"] = occurrences
    _print(make_client().create_reservation(**fields), as_json, "reserved: ")


@app.command("list")
def list_reservations(
    project: Annotated[str | None, typer.Option(help="only this project's (name or id)")] = None,
    include_past: Annotated[bool, typer.Option("--all", help="cancelled and ended ones too")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The reservations you may see that are still to end (with --all, every one)."""
    found = make_client().list_reservations(project, include_past)
    if as_json:
        console.print_json(json.dumps([r.model_dump(mode="json") for r in found]))
        return
    table = Table("id", "project", "gpus", "state", "next (UTC)", "repeats", show_edge=False)
    for r in found:
        gpus = f"{r.gpus:,} {r.model}{_where(r)}"
        window = (
            f"{r.next_start_at:%Y-%m-%d %H:%M} to {r.next_end_at:%m-%d %H:%M}" if r.next_start_at else "-"
        )
        table.add_row(str(r.id), r.project, gpus, r.state, window, _repeats(r))
    console.print(table)


@app.command("show")
def show(reservation_id: IdArg, as_json: JsonOpt = False) -> None:
    """One reservation: what it holds, for whom, when, and its state."""
    _print(make_client().get_reservation(reservation_id), as_json)


@app.command("cancel")
def cancel(reservation_id: IdArg, as_json: JsonOpt = False) -> None:
    """Release the reservation's nodes from now on (cancelling again changes nothing)."""
    _print(make_client().cancel_reservation(reservation_id), as_json, "cancelled: ")


def _print(r: ReservationRead, as_json: bool, lead: str = "") -> None:
    if as_json:
        console.print_json(json.dumps(r.model_dump(mode="json")))
        return
    console.print(
        f"{lead}reservation {r.id}: {r.gpus:,} {r.model} GPUs for project {r.project}{_where(r)}",
        markup=False,
    )
    length = span_text(int((r.end_at - r.start_at).total_seconds()))
    console.print(f"from {_at(r.start_at)} for {length}, {_repeats(r)}", markup=False)
    state = r.state if r.cancelled_at is None else f"cancelled at {_at(r.cancelled_at)}"
    label = "in force" if r.state == "active" else "next"
    window = f"; {label}: {_at(r.next_start_at)} to {_at(r.next_end_at)}" if r.next_start_at else ""
    console.print(f"state: {state}{window}", markup=False)
