"""``gpuc target create|list|delete``: the centre's declared targets (design note 0014). Admins declare
and delete them; reviewers and admins list them. What they attained per period is ``gpuc report
targets``."""

from __future__ import annotations

from typing import Annotated

import typer

from gpucommons.cli.common import console, make_client, show
from gpucommons.errors import InvalidRequestError

app = typer.Typer(no_args_is_help=True, help="Declared targets: shares of GPU-hours, floors, waits.")
COLUMNS = ("id", "name", "description", "created_at")


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="a unique name, e.g. startups-15")],
    by: Annotated[str, typer.Option(help="project, institution, kind, region, program or model")],
    group: Annotated[str, typer.Option(help="the group in that grouping, e.g. startup, non_capital")],
    min_share: Annotated[
        float | None, typer.Option("--min-share", help="the group's % of GPU-hours, at least")
    ] = None,
    min_gpu_hours: Annotated[
        float | None, typer.Option("--min-gpu-hours", help="the group's GPU-hours, at least")
    ] = None,
    max_wait_h: Annotated[
        float | None, typer.Option("--max-wait-h", help="its jobs' percentile wait in hours, at most")
    ] = None,
    percentile: Annotated[int | None, typer.Option(help="of a wait (default 90)")] = None,
    program: Annotated[int | None, typer.Option(help="only this program's usage (default: all)")] = None,
    every: Annotated[str, typer.Option(help="week, month, quarter or year")] = "month",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Declare a target: exactly one of --min-share, --min-gpu-hours or --max-wait-h."""
    bounds = {"share": min_share, "gpu_hours": min_gpu_hours, "wait": max_wait_h}
    given = [(kind, bound) for kind, bound in bounds.items() if bound is not None]
    if len(given) != 1:
        raise InvalidRequestError("give exactly one of --min-share, --min-gpu-hours or --max-wait-h")
    [(kind, threshold)] = given
    fields: dict[str, object] = {"name": name, "kind": kind, "by": by, "group": group, "threshold": threshold}
    fields.update(every=every, program_id=program, percentile=percentile)
    show(make_client().create_target(**fields), COLUMNS, as_json)


@app.command("list")
def list_targets(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Every declared target."""
    show(make_client().list_targets(), COLUMNS, as_json)


@app.command("delete")
def delete(target_id: Annotated[int, typer.Argument(help="the target's id")]) -> None:
    """Remove a target (the notices it queued stay)."""
    make_client().delete_target(target_id)
    console.print(f"target {target_id} deleted")
