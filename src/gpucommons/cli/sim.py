"""``gpuc sim``: replay a trace through a policy and write summary.json, jobs.csv and tenants.csv."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gpucommons.cli.fill import run_fill_command
from gpucommons.clusterfile import load_cluster
from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.errors import InvalidRequestError, UnknownNameError
from gpucommons.policy.registry import build_policy
from gpucommons.sim.metrics import job_rows, summarize, tenant_rows
from gpucommons.sim.runner import SimOptions, simulate
from gpucommons.sim.scenario import proportional_quotas, scale_load
from gpucommons.sim.traces.locate import trace_file
from gpucommons.sim.traces.openb import NODE_FILE as OPENB_NODE_FILE
from gpucommons.sim.traces.openb import POD_FILE as OPENB_POD_FILE
from gpucommons.sim.traces.openb import read_openb_cluster, read_openb_pods
from gpucommons.sim.traces.philly import read_philly
from gpucommons.sim.traces.synthetic import SyntheticSpec, generate

TRACES = ("philly", "synthetic", "openb")
OPENB_DIR = "alibaba-gpu-v2023-openb"


def load_trace(
    name: str, limit_jobs: int | None, seed: int, cluster_gpus: int, synthetic_jobs: int
) -> list[Job]:
    if name == "philly":
        return read_philly(trace_file("philly-derived", "philly.csv"), limit_jobs)
    if name == "openb":
        return read_openb_pods(trace_file(OPENB_DIR, OPENB_POD_FILE), limit_jobs)
    if name == "synthetic":
        count = synthetic_jobs if limit_jobs is None else min(limit_jobs, synthetic_jobs)
        return generate(SyntheticSpec(jobs=count, cluster_gpus=cluster_gpus), seed)
    path = Path(name)
    if path.suffix == ".csv":
        return read_philly(path, limit_jobs)
    raise UnknownNameError(f"unknown trace {name!r}; known: {', '.join(TRACES)} or a Philly-format .csv path")


def resolve_cluster(name: str) -> Cluster:
    """A preset, a TOML path, or ``openb`` (the GPU nodes of the openb trace)."""
    if name == "openb":
        return read_openb_cluster(trace_file(OPENB_DIR, OPENB_NODE_FILE))
    return load_cluster(name)


def sim_command(
    trace: Annotated[str, typer.Option(help="philly, synthetic, or a Philly-format CSV path")] = "philly",
    cluster: Annotated[
        str, typer.Option(help="preset name (philly, korea-2026, demo) or TOML path")
    ] = "philly",
    policy: Annotated[str, typer.Option(help="fifo, backfill, fairshare, las, quota")] = "fifo",
    placement: Annotated[str, typer.Option(help="placer name")] = "best-fit",
    seed: Annotated[int, typer.Option(help="seed for synthetic workloads and tie-breaking")] = 42,
    limit_jobs: Annotated[int | None, typer.Option(help="replay only the first N jobs")] = None,
    load: Annotated[float, typer.Option(help="multiply the arrival rate by F")] = 1.0,
    synthetic_jobs: Annotated[int, typer.Option(help="jobs to generate for --trace synthetic")] = 10_000,
    out: Annotated[Path, typer.Option(help="output directory")] = Path("sim-out"),
    quiet: Annotated[bool, typer.Option(help="no progress bar or table")] = False,
    mode: Annotated[
        str, typer.Option(help="replay (arrivals and departures) or fill (pack until --demand)")
    ] = "replay",
    demand: Annotated[
        float, typer.Option(help="fill mode: stop at this share of cluster GPUs requested")
    ] = 1.3,
) -> None:
    """Replay a trace through the real policy core and report JCT, wait, utilization and fairness."""
    if limit_jobs is not None and limit_jobs <= 0:
        raise InvalidRequestError(f"--limit-jobs must be > 0, got {limit_jobs}")
    if mode == "fill":
        inventory = resolve_cluster(cluster)
        pods = load_trace(trace, limit_jobs, seed, inventory.total_gpus, synthetic_jobs)
        run_fill_command(pods, inventory, trace, placement, demand, seed, out, quiet)
        return
    if mode != "replay":
        raise InvalidRequestError(f"--mode must be replay or fill, got {mode!r}")
    config = build_policy(policy, placement)
    inventory = resolve_cluster(cluster)
    jobs = scale_load(load_trace(trace, limit_jobs, seed, inventory.total_gpus, synthetic_jobs), load)
    options = SimOptions(quota_gpus=proportional_quotas(jobs, inventory.total_gpus))
    console = Console(stderr=True)
    started = time.perf_counter()
    with Progress(
        TextColumn(f"[bold]{policy}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=True,
    ) as progress:
        task = progress.add_task("sim", total=len(jobs))
        result = simulate(
            jobs, inventory, config, options, on_progress=lambda done: progress.update(task, completed=done)
        )
    wall_s = time.perf_counter() - started
    tenants = tenant_rows(result)
    summary: dict[str, Any] = {
        "policy": policy,
        "placement": placement,
        "trace": trace,
        "cluster": inventory.name,
        "cluster_gpus": inventory.total_gpus,
        "seed": seed,
        "load": load,
        **summarize(result, tenants),
        "sim_wall_s": round(wall_s, 3),
    }
    _write_outputs(out, summary, job_rows(result), tenants)
    if not quiet:
        _print_summary(Console(), summary)
        _print_tenants(Console(), tenants)


def _write_outputs(
    out: Path, summary: dict[str, Any], jobs: list[dict[str, Any]], tenants: list[dict[str, Any]]
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    for name, rows in (("jobs.csv", jobs), ("tenants.csv", tenants)):
        with (out / name).open("w", newline="") as handle:
            if rows:
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)


def _print_summary(console: Console, summary: dict[str, Any]) -> None:
    table = Table(
        title=f"{summary['policy']} on {summary['trace']} / {summary['cluster']} (load {summary['load']})"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in (
        "jobs_finished",
        "avg_jct_s",
        "median_jct_s",
        "p99_jct_s",
        "avg_wait_s",
        "p99_wait_s",
        "avg_bounded_slowdown",
        "utilization",
        "jain_fairness",
        "makespan_s",
        "sim_wall_s",
    ):
        value = summary[key]
        table.add_row(key, f"{value:,.3f}" if isinstance(value, float) else f"{value:,}")
    console.print(table)


def _print_tenants(console: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(title="per tenant (service = run time / time in system)")
    for column in ("tenant", "jobs", "gpu_hours", "avg_jct_s", "avg_wait_s", "service"):
        table.add_column(column, justify="left" if column == "tenant" else "right")
    for row in rows:
        table.add_row(
            row["tenant"],
            f"{row['jobs']:,}",
            f"{row['gpu_hours']:,.0f}",
            f"{row['avg_jct_s']:,.0f}",
            f"{row['avg_wait_s']:,.0f}",
            f"{row['service']:.3f}",
        )
    console.print(table)
