"""``gpuc sim``: replay a trace through a policy and write summary.json, jobs.csv, tenants.csv, kinds.csv
and power.csv (with ``--plots``, power.png and wait_cdf.png too)."""

from __future__ import annotations

import csv
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from gpucommons.errors import InvalidRequestError, UnknownNameError

if TYPE_CHECKING:  # the replay's machinery is imported when a replay runs, so ``gpuc --help`` starts fast
    from gpucommons.domain.cluster import Cluster
    from gpucommons.domain.job import Job
    from gpucommons.sim.runner import SimOptions
    from gpucommons.sim.scenariofile import RunInputs
    from gpucommons.sim.tenants import TenantTable

TRACES = ("philly", "synthetic", "openb")
OPENB_DIR = "alibaba-gpu-v2023-openb"


def load_trace(
    name: str, limit_jobs: int | None, seed: int, cluster_gpus: int, synthetic_jobs: int
) -> list[Job]:
    from gpucommons.sim.traces.locate import trace_file
    from gpucommons.sim.traces.openb import POD_FILE, read_openb_pods
    from gpucommons.sim.traces.philly import read_philly
    from gpucommons.sim.traces.synthetic import SyntheticSpec, generate

    if name == "philly":
        return read_philly(trace_file("philly-derived", "philly.csv"), limit_jobs)
    if name == "openb":
        return read_openb_pods(trace_file(OPENB_DIR, POD_FILE), limit_jobs)
    if name == "synthetic":
        count = synthetic_jobs if limit_jobs is None else min(limit_jobs, synthetic_jobs)
        return generate(SyntheticSpec(jobs=count, cluster_gpus=cluster_gpus), seed)
    path = Path(name)
    if path.suffix == ".csv":
        return read_philly(path, limit_jobs)
    raise UnknownNameError(f"unknown trace {name!r}; known: {', '.join(TRACES)} or a Philly-format .csv path")


def resolve_cluster(name: str) -> Cluster:
    """A preset, a TOML path, or ``openb`` (the GPU nodes of the openb trace)."""
    from gpucommons.clusterfile import load_cluster
    from gpucommons.sim.traces.locate import trace_file
    from gpucommons.sim.traces.openb import NODE_FILE, read_openb_cluster

    if name == "openb":
        return read_openb_cluster(trace_file(OPENB_DIR, NODE_FILE))
    return load_cluster(name)


def _sim_options(
    jobs: list[Job], inventory: Cluster, table: TenantTable | None, run: RunInputs
) -> SimOptions:
    """With a tenants file its awards are the guarantees; without one each tenant is guaranteed its share
    of the trace's GPU-seconds, the baseline replays have always used."""
    from gpucommons.sim.runner import SimOptions
    from gpucommons.sim.scenario import proportional_quotas

    if table is None:
        quotas = proportional_quotas(jobs, inventory.total_gpus)
        return SimOptions(quota_gpus=quotas, power_model=run.power_model)
    table = table.cover({j.tenant for j in jobs}, run.unlisted)
    return SimOptions(
        quota_gpus=table.quotas(),
        awards=table.awards(),
        tenant_kinds=table.kinds(),
        sovereign_tenants=table.sovereign(),
        power_model=run.power_model,
    )


def _plots_option(value: bool) -> bool:
    """Check for matplotlib while parsing, so a missing extra fails before a long replay, not after."""
    from gpucommons.sim.plots import require_matplotlib

    if value:
        require_matplotlib()
    return value


def sim_command(
    trace: Annotated[
        str | None, typer.Option(help="philly (default), synthetic, or a Philly-format CSV path")
    ] = None,
    cluster: Annotated[
        str | None, typer.Option(help="preset name (philly: default, korea-2026, demo) or TOML path")
    ] = None,
    policy: Annotated[
        str | None, typer.Option(help="fifo (default), backfill, fairshare, las, quota, hetero")
    ] = None,
    placement: Annotated[str | None, typer.Option(help="placer name (default best-fit)")] = None,
    seed: Annotated[int, typer.Option(help="seed for synthetic workloads and tie-breaking")] = 42,
    limit_jobs: Annotated[int | None, typer.Option(help="replay only the first N jobs")] = None,
    load: Annotated[float | None, typer.Option(help="multiply the arrival rate by F (default 1)")] = None,
    synthetic_jobs: Annotated[int, typer.Option(help="jobs to generate for --trace synthetic")] = 10_000,
    tenants_file: Annotated[
        Path | None,
        typer.Option(
            "--tenants", help="tenants CSV: awards, kinds, sovereignty (default: shares of the trace)"
        ),
    ] = None,
    unlisted: Annotated[
        str | None, typer.Option(help="trace tenants missing from --tenants: error (default) or best-effort")
    ] = None,
    borrowing: Annotated[
        str | None, typer.Option(help="on (default): borrow idle capacity; off: awards are partitions")
    ] = None,
    power_cap_mw: Annotated[
        float | None, typer.Option(help="the same cap on every site, in MW, in place of the cluster's")
    ] = None,
    power_preempt: Annotated[
        bool | None,
        typer.Option(
            "--power-preempt/--no-power-preempt",
            help="a falling cap preempts jobs (default: it only holds starts)",
        ),
    ] = None,
    siting: Annotated[
        bool | None,
        typer.Option(
            "--siting/--no-siting",
            help="try the sites a job may use best first: headroom, then carbon and price (default off)",
        ),
    ] = None,
    scenario: Annotated[
        str | None, typer.Option(help="scenario TOML (or a shipped one: philly-commons); options override it")
    ] = None,
    out: Annotated[Path, typer.Option(help="output directory")] = Path("sim-out"),
    quiet: Annotated[bool, typer.Option(help="no progress bar or table")] = False,
    mode: Annotated[
        str, typer.Option(help="replay (arrivals and departures) or fill (pack until --demand)")
    ] = "replay",
    demand: Annotated[
        float, typer.Option(help="fill mode: stop at this share of cluster GPUs requested")
    ] = 1.3,
    plots: Annotated[
        bool,
        typer.Option(help="replay mode: also write power.png and wait_cdf.png", callback=_plots_option),
    ] = False,
) -> None:
    """Replay a trace through the real policy core and report JCT, wait, utilization and fairness."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gpucommons.cli.fill import run_fill_command
    from gpucommons.policy.constraints import Commons
    from gpucommons.policy.protocols import Seeded
    from gpucommons.policy.registry import build_policy
    from gpucommons.sim.metrics import job_rows, kind_rows, summarize, tenant_rows, waits_s_by_kind
    from gpucommons.sim.plots import write_plots
    from gpucommons.sim.report_power import power_rows
    from gpucommons.sim.report_reservations import reservation_figures
    from gpucommons.sim.reservations import build_workload
    from gpucommons.sim.runner import simulate
    from gpucommons.sim.scenario import scale_load
    from gpucommons.sim.scenariofile import (
        Scenario,
        check_power_cap_mw,
        load_scenario,
        parse_on_off,
        with_power_cap,
    )
    from gpucommons.sim.tenants import parse_unlisted, read_tenants

    if limit_jobs is not None and limit_jobs <= 0:
        raise InvalidRequestError(f"--limit-jobs must be > 0, got {limit_jobs}")
    if mode not in ("replay", "fill"):
        raise InvalidRequestError(f"--mode must be replay or fill, got {mode!r}")
    given = Scenario(
        cluster=cluster,
        tenants=tenants_file,
        trace=trace,
        load=load,
        policy=policy,
        placement=placement,
        borrowing=parse_on_off(borrowing, "--borrowing"),
        power_cap_mw=check_power_cap_mw(power_cap_mw),
        power_preempt=power_preempt,
        siting=siting,
        unlisted=None if unlisted is None else parse_unlisted(unlisted),
    )
    run = given.over(Scenario() if scenario is None else load_scenario(scenario)).resolve()
    trace, cluster, policy, placement, load = run.trace, run.cluster, run.policy, run.placement, run.load
    inventory = resolve_cluster(cluster)
    if run.power_cap_mw is not None:
        inventory = with_power_cap(inventory, run.power_cap_mw)
    if mode == "fill":
        pods = load_trace(trace, limit_jobs, seed, inventory.total_gpus, synthetic_jobs)
        run_fill_command(pods, inventory, trace, placement, demand, seed, out, quiet)
        return
    commons = Commons(
        awards=run.tenants is not None,
        borrowing=run.borrowing,
        power_preempt=run.power_preempt,
        power_model=run.power_model,
        siting=run.siting,
        checkpoint_aware=run.checkpoint_aware,
    )
    config = build_policy(policy, placement, commons)  # before the trace: a typo fails at once
    if isinstance(config.placer, Seeded):
        config.placer.reseed(seed)  # the tie-break order (FGD's node order) follows --seed
    table = read_tenants(run.tenants, {p.model.name for p in inventory.pools}) if run.tenants else None
    jobs = scale_load(load_trace(trace, limit_jobs, seed, inventory.total_gpus, synthetic_jobs), load)
    added = build_workload(jobs, run.reservations, run.checkpoints, seed, inventory, scenario or "scenario")
    jobs = added.jobs
    options = _sim_options(jobs, inventory, table, run)
    options = replace(options, reservations=added.reservations, checkpointing=added.checkpointing)
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
    kinds = kind_rows(result)
    summary: dict[str, Any] = {
        "policy": policy,
        "placement": placement,
        "trace": trace,
        "cluster": inventory.name,
        "cluster_gpus": inventory.total_gpus,
        "seed": seed,
        "load": load,
        **summarize(result, tenants, kinds),
        **(reservation_figures(result, added.made) if added.reservations else {}),
        "sim_wall_s": round(wall_s, 3),
    }
    _write_outputs(out, summary, job_rows(result), tenants, kinds, power_rows(result.power))
    if plots:
        write_plots(out, result, waits_s_by_kind(result))
    if not quiet:
        _print_summary(Console(), summary)
        _print_tenants(Console(), tenants)


POWER_CSV_FIELDS = ["t_s", "site", "power_mw"]
KINDS_CSV_FIELDS = [
    "kind",
    "tenants",
    "jobs",
    "jobs_finished",
    "gpu_hours",
    "avg_wait_s",
    "p90_wait_s",
    "gpu_hours_share",
]


def _write_outputs(
    out: Path,
    summary: dict[str, Any],
    jobs: list[dict[str, Any]],
    tenants: list[dict[str, Any]],
    kinds: list[dict[str, Any]],
    power: list[dict[str, Any]],
) -> None:
    """summary.json and the CSVs; kinds.csv and power.csv always carry their header (empty cells for
    ``None``: a figure that does not exist, such as the wait of a kind with no finished job)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    files: tuple[tuple[str, list[dict[str, Any]], list[str] | None], ...] = (
        ("jobs.csv", jobs, None),
        ("tenants.csv", tenants, None),
        ("kinds.csv", kinds, KINDS_CSV_FIELDS),
        ("power.csv", power, POWER_CSV_FIELDS),
    )
    for name, rows, fields in files:
        with (out / name).open("w", newline="") as handle:
            if rows or fields:
                writer = csv.DictWriter(handle, fieldnames=fields or list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)


def _print_summary(console: Console, summary: dict[str, Any]) -> None:
    from rich.table import Table

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
        "jobs_never_served",
        "energy_kwh",
        "cost_krw",
    ):
        value = summary[key]
        table.add_row(key, f"{value:,.3f}" if isinstance(value, float) else f"{value:,}")
    for site, mw in summary["peak_site_power_mw"].items():
        table.add_row(f"peak MW {site}", f"{mw:,.3f}")
    table.add_row("sim_wall_s", f"{summary['sim_wall_s']:,.3f}")
    console.print(table)


def _print_tenants(console: Console, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="per tenant (service = run time / time in system)")
    for column in ("tenant", "jobs", "gpu_hours", "avg_jct_s", "avg_wait_s", "service"):
        table.add_column(column, justify="left" if column == "tenant" else "right")
    for row in rows:
        table.add_row(
            row["tenant"],
            f"{row['jobs']:,}",
            f"{row['gpu_hours']:,.0f}",
            _or_dash(row["avg_jct_s"]),
            _or_dash(row["avg_wait_s"]),
            f"{row['service']:.3f}",
        )
    console.print(table)


def _or_dash(value: float | None) -> str:
    """A tenant with no finished job has no average: shown as a dash, not as a misleading 0."""
    return "-" if value is None else f"{value:,.0f}"
