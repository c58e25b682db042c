"""``gpuc award``: hand and automatic awards and their lifecycle (admin), and reading them (everyone,
for the projects they may see)."""

from __future__ import annotations

from typing import Annotated

import typer

from gpucommons.cli.common import make_client, parse_time, show

app = typer.Typer(no_args_is_help=True, help="Awards: GPU-hour budgets and guaranteed GPUs.")
COLUMNS = (
    "id",
    "project_id",
    "program_id",
    "model",
    "guaranteed_gpus",
    "gpu_hours_budget",
    "unit",
    "status",
    "starts_at",
    "ends_at",
)
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON")]


@app.command("create")
def create(
    project: Annotated[int, typer.Option(help="project id")],
    program: Annotated[int, typer.Option(help="program id")],
    gpus: Annotated[int, typer.Option(help="guaranteed GPUs, in whole program units")] = 0,
    gpu_hours: Annotated[float | None, typer.Option(help="GPU-hour budget")] = None,
    proposal: Annotated[int | None, typer.Option(help="the proposal this answers")] = None,
    starts_at: Annotated[str | None, typer.Option(help="ISO 8601 start (default now)")] = None,
    ends_at: Annotated[
        str | None, typer.Option(help="ISO 8601 end (default start + program duration)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Award by hand (admin)."""
    row = make_client().create_award(
        project_id=project,
        program_id=program,
        proposal_id=proposal,
        guaranteed_gpus=gpus,
        gpu_hours_budget=gpu_hours,
        starts_at=parse_time(starts_at, "--starts-at") if starts_at else None,
        ends_at=parse_time(ends_at, "--ends-at") if ends_at else None,
    )
    show(row, COLUMNS, as_json)


@app.command("list")
def list_(
    program: Annotated[int | None, typer.Option(help="only this program")] = None, as_json: JsonOpt = False
) -> None:
    """List the awards you may see."""
    show(make_client().list_awards(program), COLUMNS, as_json)


@app.command("show")
def show_(award_id: int, as_json: JsonOpt = False) -> None:
    """Show one award with its usage and reclaimed GPUs."""
    show(make_client().get_award(award_id), (*COLUMNS, "gpu_hours_used", "reclaimed_gpus"), as_json)


@app.command("reclaims")
def reclaims(award_id: int, as_json: JsonOpt = False) -> None:
    """What was taken back from an award: GPUs, budget hours, the usage that justified it and, under
    the lifecycle's rule, the period evaluated."""
    columns = ("id", "reclaimed_at", "reclaimed_gpus", "reclaimed_gpu_hours", "utilization", "period")
    show(make_client().list_reclaims(award_id), columns, as_json)


@app.command("auto")
def auto(program: Annotated[int, typer.Argument(help="program id")], as_json: JsonOpt = False) -> None:
    """Award reviewed proposals by score within the program's capacity, unit and caps (admin)."""
    show(make_client().auto_award(program), COLUMNS, as_json)


@app.command("activate")
def activate(award_id: int, as_json: JsonOpt = False) -> None:
    """Activate a pending award (admin)."""
    show(make_client().activate_award(award_id), COLUMNS, as_json)


@app.command("extend")
def extend(
    award_id: int,
    ends_at: Annotated[str, typer.Option(help="new ISO 8601 end, later than the current one")],
    as_json: JsonOpt = False,
) -> None:
    """Move an award's end later (admin)."""
    show(make_client().extend_award(award_id, parse_time(ends_at, "--ends-at")), COLUMNS, as_json)
