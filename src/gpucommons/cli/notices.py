"""``gpuc notice list``: the notices of the award lifecycle (an admin: all; a PI: their projects'),
newest first, with whether and when each was sent (design note 0012)."""

from __future__ import annotations

from typing import Annotated

import typer

from gpucommons.cli.common import make_client, show

app = typer.Typer(no_args_is_help=True, help="Notices about awards: offered, expiring, reclaimed, ...")
COLUMNS = ("id", "kind", "award_id", "created_at", "sent_at", "attempts", "last_error")


@app.command("list")
def list_notices(
    unsent: Annotated[bool, typer.Option("--unsent", help="only those not delivered yet")] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, max=5000, help="at most this many (default 500)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON, bodies and recipients too")] = False,
) -> None:
    """List notices, newest first."""
    show(make_client().list_notices(unsent, limit), COLUMNS, as_json)
