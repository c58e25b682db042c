"""``gpuc plan``: capacity planning over the simulator (design note 0018). ``compare`` runs a scenario's
arrangements side by side; ``size`` finds the smallest pool that meets service targets. The machinery
is imported when a command runs, so ``gpuc --help`` stays fast."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from gpucommons.errors import ConfigError, InvalidRequestError

if TYPE_CHECKING:
    from gpucommons.planner.runs import RunCache, RunSpec

app = typer.Typer(no_args_is_help=True, help="Plan capacity: compare arrangements, size a pool.")

HOURS_PER_YEAR = 8760.0
SECONDS_PER_YEAR = HOURS_PER_YEAR * 3600.0

ScenarioOption = Annotated[
    str,
    typer.Option(help="a shipped scenario (korea-2026-call, korea-2028, korea-2030) or a scenario TOML path"),
]
OutOption = Annotated[Path | None, typer.Option(help="report folder (default plan-out/SCENARIO)")]
WorkersOption = Annotated[int | None, typer.Option(help="parallel runs (default: the CPUs)")]
SeedOption = Annotated[int | None, typer.Option(help="workload seed (default: the scenario's)")]
NoCacheOption = Annotated[bool, typer.Option("--no-cache", help="recompute every run")]
QuietOption = Annotated[bool, typer.Option(help="no progress bar or table")]


def _workers(value: int | None) -> int:
    if value is not None and value < 1:
        raise InvalidRequestError(f"--workers must be >= 1, got {value}")
    return value or os.cpu_count() or 1


def _cache(out: Path, no_cache: bool) -> RunCache:
    from gpucommons.planner.runs import RunCache

    return RunCache(None if no_cache else out / ".cache")


class _Bar:
    """A rich progress bar over runs, advanced as each one is done (cached ones too)."""

    def __init__(self, quiet: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=quiet,
            transient=True,
        )
        self.task = self.progress.add_task("runs", total=0)

    def expect(self, count: int) -> None:
        total = self.progress.tasks[0].total or 0
        self.progress.update(self.task, total=total + count)

    def done(self, run: RunSpec, cached: bool) -> None:
        self.progress.update(self.task, advance=1, description=f"{run.label}{' (cached)' if cached else ''}")


@app.command("compare")
def compare_command(
    scenario: ScenarioOption,
    out: OutOption = None,
    policies: Annotated[str | None, typer.Option(help="comma-separated (default: the scenario's)")] = None,
    servers: Annotated[
        int | None, typer.Option(help="pool size in servers (default: the scenario's)")
    ] = None,
    workers: WorkersOption = None,
    seed: SeedOption = None,
    no_cache: NoCacheOption = False,
    plots: Annotated[bool, typer.Option(help="write the PNG plots")] = True,
    quiet: QuietOption = False,
) -> None:
    """Static partitions against the commons and other policies on the same call."""
    from gpucommons.planner.plots import write_compare_plots
    from gpucommons.planner.policies import check_policy
    from gpucommons.planner.pool import default_servers
    from gpucommons.planner.report import summary_rows, write_compare
    from gpucommons.planner.runs import run_all, spec_for
    from gpucommons.planner.scenario import load_plan_scenario
    from gpucommons.sim.plots import require_matplotlib

    if plots:
        require_matplotlib()
    plan = load_plan_scenario(scenario)
    names = plan.spec.policies if policies is None else [p.strip() for p in policies.split(",") if p.strip()]
    for name in names:
        check_policy(name, "--policies")
    size = servers if servers is not None else default_servers(plan)
    if size < 1:
        raise InvalidRequestError(f"--servers must be >= 1, got {size}")
    run_seed = plan.spec.seed if seed is None else seed
    folder = out or Path("plan-out") / plan.name
    specs = [spec_for(plan, name, size, run_seed) for name in names]
    bar = _Bar(quiet)
    bar.expect(len(specs))
    with bar.progress:
        runs = run_all(specs, _cache(folder, no_cache), _workers(workers), bar.done)
    folder.mkdir(parents=True, exist_ok=True)
    pictures = write_compare_plots(folder, runs) if plots else []
    notes = (
        f"Scenario `{plan.name}` ({plan.source.rsplit('/', 1)[-1]}), {size:,} servers, seed {run_seed}, "
        f"{plan.spec.period_days:g} days of demand. Waits are of finished jobs; 'never served' counts "
        "jobs that never ran."
    )
    write_compare(folder, f"Compare: {plan.name}", runs, pictures, notes)
    if not quiet:
        _print_table(f"{plan.name}: {size:,} servers", [r["policy"] for r in runs], summary_rows(runs))
        Console().print(f"report: {folder / 'report.md'}")


def _print_table(title: str, columns: list[str], rows: list[tuple[str, list[str]]]) -> None:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    for column in columns:
        table.add_column(column, justify="right")
    for name, cells in rows:
        table.add_row(name, *cells)
    Console().print(table)


def _prices(values: list[str], base: dict[str, int]) -> dict[str, int]:
    prices = dict(base)
    for value in values:
        model, _, krw = value.partition("=")
        try:
            prices[model.strip()] = int(krw.replace("_", "").replace(",", ""))
        except ValueError:
            raise InvalidRequestError(
                f"--price {value!r} must be MODEL=WON_PER_GPU, e.g. B200=60000000"
            ) from None
    return prices


@app.command("size")
def size_command(
    scenario: ScenarioOption,
    target: Annotated[
        list[str], typer.Option(help="METRIC:GROUP<=VALUE, e.g. p90-wait:academia<=24h (repeatable)")
    ],
    out: OutOption = None,
    policy: Annotated[str, typer.Option(help="the arrangement sized")] = "commons",
    max_servers: Annotated[
        int | None, typer.Option(help="top of the search (default 4 x the scenario's)")
    ] = None,
    min_servers: Annotated[
        int | None, typer.Option(help="bottom (default: the fewest holding every guarantee)")
    ] = None,
    price: Annotated[
        list[str] | None, typer.Option(help="MODEL=WON per GPU, over the scenario's (repeatable)")
    ] = None,
    workers: WorkersOption = None,
    seed: SeedOption = None,
    no_cache: NoCacheOption = False,
    quiet: QuietOption = False,
) -> None:
    """The smallest pool, in whole servers, that meets every target; then a check at it and one below."""
    from gpucommons.planner.policies import check_policy
    from gpucommons.planner.pool import default_servers, pool_cost, scaled_cluster
    from gpucommons.planner.scenario import load_plan_scenario
    from gpucommons.planner.sizing import SizeSearch, format_wait, search
    from gpucommons.planner.targets import parse_target
    from gpucommons.sim.runner import SimOptions

    plan = load_plan_scenario(scenario)
    check_policy(policy, "--policy")
    targets = [parse_target(t, plan.groups()) for t in target]
    prices = _prices(price or [], plan.spec.capex_krw_per_gpu)
    top = max_servers if max_servers is not None else 4 * default_servers(plan)
    run_seed = plan.spec.seed if seed is None else seed
    folder = out or Path("plan-out") / f"{plan.name}-size"
    ask = SizeSearch(plan, targets, policy, run_seed, top, min_servers, _workers(workers))
    bar = _Bar(quiet)
    bar.expect(0)

    def counted(run: RunSpec, cached: bool) -> None:
        bar.expect(1)
        bar.done(run, cached)

    with bar.progress:
        answer = search(ask, _cache(folder, no_cache), counted)
    cluster = scaled_cluster(plan, answer.servers)
    cost = pool_cost(cluster, prices, SimOptions().power_model)
    run = answer.run
    per_year = SECONDS_PER_YEAR / run["makespan_s"] if run["makespan_s"] > 0 else 0.0
    lines = _size_lines(answer, cost, run, per_year, format_wait)
    folder.mkdir(parents=True, exist_ok=True)
    _write_size_report(folder, plan.name, targets, answer, lines)
    if not quiet:
        for line in lines:
            Console().print(line, highlight=False)
        Console().print(f"report: {folder / 'report.md'}")


def _size_lines(answer: Any, cost: Any, run: dict[str, Any], per_year: float, format_wait: Any) -> list[str]:
    by_model = ", ".join(f"{n:,} {m}" for m, n in cost.gpus_by_model.items())
    lines = [
        f"smallest pool meeting the targets: {answer.servers:,} servers = {cost.gpus:,} GPUs ({by_model})",
        f"power at full load: {cost.it_mw:,.2f} MW IT, {cost.facility_mw:,.2f} MW facility (IT x PUE)",
        f"capex: {cost.capex_krw:,} won"
        + (
            f" (no price for {', '.join(cost.capex_unpriced_models)}: give --price)"
            if cost.capex_unpriced_models
            else ""
        ),
        f"energy at this workload: {run['cost_krw'] * per_year:,.0f} won a year, "
        f"{run['co2_kg'] * per_year / 1000:,.0f} t CO2 a year",
    ]
    for verdict in answer.verdicts:
        lines.append(f"  {verdict.target.text}: {format_wait(verdict.measured_s)}")
    for size, verdicts in answer.check:
        state = "met" if all(v.met for v in verdicts) else "missed"
        figures = ", ".join(f"{v.target.text.split('<=')[0]} {format_wait(v.measured_s)}" for v in verdicts)
        lines.append(f"check (re-run) at {size:,} servers: {state} ({figures})")
    lines.append(f"search: {len(answer.tried)} sizes tried, exact to 1 server for this seed")
    return lines


def _write_size_report(folder: Path, name: str, targets: list[Any], answer: Any, lines: list[str]) -> None:
    import json

    from gpucommons.planner.plots import FRONTIER_PNG, write_frontier
    from gpucommons.planner.report import write_run
    from gpucommons.sim.plots import require_matplotlib

    write_run(folder, answer.run)
    body = [f"# Size: {name}", "", *(f"- {line}" for line in lines)]
    try:
        require_matplotlib()
    except ConfigError:
        pass  # the figure is optional (the plots extra); the report stands without it
    else:
        points = {
            size: {v.target.text: v.measured_s for v in answer.frontier[size]} for size in answer.frontier
        }
        write_frontier(folder / FRONTIER_PNG, points, {t.text: t.limit_s for t in targets})
        body += ["", f"![frontier]({FRONTIER_PNG})"]
    tried = {str(s): met for s, met in sorted(answer.tried.items())}
    (folder / "search.json").write_text(
        json.dumps({"servers": answer.servers, "tried": tried}, indent=1) + "\n"
    )
    (folder / "report.md").write_text("\n".join(body) + "\n")
