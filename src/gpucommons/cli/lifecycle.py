"""``gpuc admin lifecycle``: run one step of the award lifecycle now (or at ``--now``, to replay or test
a date) and show or set a program's reclaim rule, through the API (design note 0012)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from gpucommons.cli.common import console, make_client, parse_time, show
from gpucommons.errors import InvalidRequestError

app = typer.Typer(no_args_is_help=True, help="The award lifecycle: expiry, reclaim, re-offer, notices.")
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]
RULE_COLUMNS = ("program_id", "table", "default_table", "period_days", "warning_days")


@app.command("run")
def run(
    now: Annotated[
        str | None, typer.Option(help="ISO 8601 time of the step (default: the server's now)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run one lifecycle step: expire awards, reclaim by each program's rule, re-offer, queue notices."""
    at = parse_time(now, "--now") if now is not None else None
    report = make_client().run_lifecycle(at)
    if as_json:
        show(report, (), as_json=True)
        return
    console.print(
        f"lifecycle at {report.now.isoformat()}: {len(report.expired)} expired, {len(report.reclaims)} "
        f"reclaimed, {len(report.offered)} offered, {len(report.notices)} notices queued"
    )
    for r in report.reclaims:
        console.print(
            f"  award {r.award_id} period {r.period}: used {r.utilization:.0%} of plan, "
            f"{r.reclaimed_gpus} GPUs and {r.reclaimed_gpu_hours:,.1f} GPU-hours taken back"
        )


def reclaim_bands(text: str, option: str = "--table") -> list[list[float]]:
    """A reclaim table as written on the command line; the server checks the bands themselves."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequestError(
            f"{option}: not JSON ({exc.msg}); e.g. '[[0.2, 0.8], [0.7, 0.2]]'"
        ) from None
    if not isinstance(value, list):
        raise InvalidRequestError(f"{option} must be a JSON list of [below, fraction] pairs")
    return value


@app.command("rule")
def rule(
    program: Annotated[int, typer.Argument(help="program id")],
    table: Annotated[
        str | None, typer.Option(help="JSON bands [[below, fraction], ...] of usage against plan; [] never")
    ] = None,
    default_table: Annotated[
        bool, typer.Option("--default-table", help="go back to the default table")
    ] = False,
    period_days: Annotated[int | None, typer.Option(min=1, help="days between evaluations")] = None,
    warning_days: Annotated[int | None, typer.Option(min=0, help="days of warning before each")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a program's reclaim rule, or change the parts given (admins)."""
    if table is not None and default_table:
        raise InvalidRequestError("give --table or --default-table, not both")
    client = make_client()
    current = client.get_reclaim_rule(program)
    if table is not None or default_table or period_days is not None or warning_days is not None:
        kept = None if current.default_table else current.table
        current = client.set_reclaim_rule(
            program,
            None if default_table else (reclaim_bands(table) if table is not None else kept),
            current.period_days if period_days is None else period_days,
            current.warning_days if warning_days is None else warning_days,
        )
    show(current, RULE_COLUMNS, as_json)
