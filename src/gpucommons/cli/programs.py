"""``gpuc program``: calls for proposals (create, open and close are admin actions)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from gpucommons.cli.common import make_client, show, show_record
from gpucommons.cli.lifecycle import reclaim_bands
from gpucommons.errors import InvalidRequestError
from gpucommons.reclaiming import DEFAULT_PERIOD_DAYS, DEFAULT_WARNING_DAYS

app = typer.Typer(no_args_is_help=True, help="Programs (calls for proposals).")
COLUMNS = ("id", "name", "model", "capacity_gpus", "unit_gpus", "cap_per_org_gpus", "duration_days", "status")
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


def _discounts(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidRequestError(f"--discounts: not JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise InvalidRequestError('--discounts must be a JSON object like {"university": 1.0}')
    return value


@app.command("create")
def create(
    name: Annotated[str, typer.Argument()],
    model: Annotated[str, typer.Option(help="accelerator model, e.g. H200")],
    capacity_gpus: Annotated[int, typer.Option(help="GPUs the call hands out")],
    unit_gpus: Annotated[int, typer.Option(help="allocation unit (8 = whole 8-GPU servers)")] = 8,
    cap_per_org_gpus: Annotated[int | None, typer.Option(help="most GPUs one institution may hold")] = None,
    non_capital_bonus: Annotated[float, typer.Option(help="score bonus outside the capital region")] = 0.0,
    duration_days: Annotated[int, typer.Option(help="award period")] = 120,
    price_krw_per_gpu_hour: Annotated[int, typer.Option(help="list price, whole won")] = 0,
    discounts: Annotated[str, typer.Option(help='JSON, e.g. {"university": 1.0, "startup": 0.5}')] = "{}",
    youth_startup_extra_discount: Annotated[float, typer.Option(help="further fraction off")] = 0.0,
    reclaim_below_utilization: Annotated[float | None, typer.Option(help="reclaim threshold 0..1")] = None,
    reclaim_after_days: Annotated[int | None, typer.Option(help="reclaim window in days")] = None,
    reclaim_table: Annotated[
        str | None,
        typer.Option(help="the lifecycle's reclaim rule: JSON bands [[below, fraction], ...]; [] never"),
    ] = None,
    reclaim_period_days: Annotated[int, typer.Option(help="days between reclaim evaluations")] = (
        DEFAULT_PERIOD_DAYS
    ),
    reclaim_warning_days: Annotated[
        int, typer.Option(help="days of warning before each")
    ] = DEFAULT_WARNING_DAYS,
    unit: Annotated[
        str,
        typer.Option(
            help="what award budgets count: device-hours (of the program's model) or reference-hours "
            "(valid on every model, an hour costing the job's speed there)"
        ),
    ] = "device-hours",
    closed: Annotated[bool, typer.Option("--closed", help="create closed to proposals")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a program (admin)."""
    row = make_client().create_program(
        name=name,
        model=model,
        capacity_gpus=capacity_gpus,
        unit_gpus=unit_gpus,
        cap_per_org_gpus=cap_per_org_gpus,
        non_capital_bonus=non_capital_bonus,
        duration_days=duration_days,
        price_krw_per_gpu_hour=price_krw_per_gpu_hour,
        discounts=_discounts(discounts),
        youth_startup_extra_discount=youth_startup_extra_discount,
        reclaim_below_utilization=reclaim_below_utilization,
        reclaim_after_days=reclaim_after_days,
        reclaim_table=None if reclaim_table is None else reclaim_bands(reclaim_table, "--reclaim-table"),
        reclaim_period_days=reclaim_period_days,
        reclaim_warning_days=reclaim_warning_days,
        unit=unit,
        status="closed" if closed else "open",
    )
    show(row, COLUMNS, as_json)


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List programs."""
    show(make_client().list_programs(), COLUMNS, as_json)


@app.command("show")
def show_(program_id: int, as_json: JsonOpt = False) -> None:
    """Show one program with its pricing and reclaim rule."""
    columns = (
        *COLUMNS,
        "unit",
        "price_krw_per_gpu_hour",
        "discounts",
        "reclaim_below_utilization",
        "reclaim_after_days",
        "reclaim_table",
        "reclaim_period_days",
        "reclaim_warning_days",
    )
    show_record(make_client().get_program(program_id), columns, as_json)


@app.command("open")
def open_(program_id: int) -> None:
    """Open a program to proposals (admin)."""
    show(make_client().set_program_open(program_id, True), COLUMNS)


@app.command("close")
def close(program_id: int) -> None:
    """Close a program to proposals (admin)."""
    show(make_client().set_program_open(program_id, False), COLUMNS)
