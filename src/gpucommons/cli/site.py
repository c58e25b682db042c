"""``gpuc site``: bring a site's inventory into gpucommons (``import-slurm`` reads a Slurm cluster)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gpucommons.errors import InvalidRequestError

app = typer.Typer(no_args_is_help=True, help="Sites: import inventory from a resource manager.")


def _model_map(pairs: list[str]) -> dict[str, str]:
    mapping = {}
    for pair in pairs:
        gres_type, sep, model = pair.partition("=")
        if not sep or not gres_type or not model:
            raise InvalidRequestError(f"--model expects TYPE=MODEL (e.g. mi250=MI300X), got {pair!r}")
        mapping[gres_type.lower()] = model
    return mapping


@app.command("import-slurm")
def import_slurm(
    out: Annotated[Path | None, typer.Option(help="write the cluster TOML here (default: stdout)")] = None,
    name: Annotated[str, typer.Option(help="cluster name")] = "slurm",
    site: Annotated[str, typer.Option(help="site name for every pool")] = "slurm",
    model: Annotated[
        list[str] | None, typer.Option(help="map a GRES type to a catalog model: TYPE=MODEL")
    ] = None,
    backend_config: Annotated[
        Path | None, typer.Option(help="also write Slurm backend settings (partitions, node names)")
    ] = None,
    slurm_conf: Annotated[
        str | None, typer.Option(help="SLURM_CONF of the cluster (default: inherited)")
    ] = None,
) -> None:
    """Read nodes, GPUs (GRES), CPUs and memory with sinfo and write a cluster TOML gpucommons can load."""
    # Imported here, not at the top: every other command (and ``gpuc --help``) starts without them.
    from gpucommons.backends.slurm_cli import SlurmCli
    from gpucommons.backends.slurm_inventory import backend_toml, cluster_toml, import_slurm_inventory
    from gpucommons.clusterfile import parse_cluster

    inventory = import_slurm_inventory(SlurmCli(slurm_conf=slurm_conf), name, site, _model_map(model or []))
    text = cluster_toml(inventory.spec)
    cluster = parse_cluster(text, "imported cluster")  # what we write must load
    console = Console(stderr=True)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
    if backend_config is not None:
        backend_config.write_text(backend_toml(inventory))
    pools = ", ".join(f"{p.node_count} x {p.gpus_per_node} {p.model.name}" for p in cluster.pools)
    console.print(f"imported {len(cluster.nodes)} nodes ({pools}) into {out or 'stdout'}", highlight=False)
    if inventory.skipped:
        console.print(f"skipped nodes without GPUs: {', '.join(inventory.skipped)}", highlight=False)
