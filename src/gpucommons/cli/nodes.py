"""``gpuc node``: list the cluster's nodes, and (admins) drain and resume them through the API. A drained
node gets no new job; what runs there runs on (design note 0008)."""

from __future__ import annotations

from typing import Annotated

import typer

from gpucommons.cli.common import console, make_client, show

app = typer.Typer(no_args_is_help=True, help="Nodes: list, drain for maintenance, resume.")
COLUMNS = ("name", "pool", "model", "site", "gpus", "gpus_allocated", "drained", "drain_reason", "drained_at")
NameArg = Annotated[str, typer.Argument(help="node name, as in the cluster file (see gpuc node list)")]


@app.command("list")
def list_nodes(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Every node: pool, model, site, GPUs, GPUs held by running jobs, and its drain if any."""
    show(make_client().list_nodes(), COLUMNS, as_json)


@app.command("drain")
def drain(
    name: NameArg,
    reason: Annotated[str, typer.Option(help="why it is out of service (shown until it is resumed)")],
) -> None:
    """Take a node out of service: nothing new starts there; running jobs run on."""
    node = make_client().drain_node(name, reason)
    since = f" since {node.drained_at:%Y-%m-%d %H:%M}" if node.drained_at is not None else ""
    held = f"; {node.gpus_allocated} GPUs still held by running jobs" if node.gpus_allocated else ""
    console.print(f"node {node.name} drained{since}: {node.drain_reason}{held}")


@app.command("resume")
def resume(name: NameArg) -> None:
    """Put a drained node back in service: jobs may be placed there from the next cycle."""
    node = make_client().resume_node(name)
    console.print(f"node {node.name} in service ({node.gpus - node.gpus_allocated} of {node.gpus} GPUs free)")
