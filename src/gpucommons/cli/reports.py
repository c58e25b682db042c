"""``gpuc report usage``: GPU-hours, jobs, energy, CO2, won and FLOPs by project, institution, kind,
region, program, site or model over a period, as a table, CSV or JSON, aggregate or per day, week,
month, quarter or year, optionally plotted (design note 0010); ``gpuc report compute``: the
training-compute ledger per project or lineage, and ``gpuc report transparency``: one project's report
to publish. The server scopes both: a reviewer or admin sees every project, anyone else
their own. ``gpuc report targets``: what each declared target attained in a period, for reviewers and
admins (design note 0014)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import typer

from gpucommons.cli.common import console, make_client
from gpucommons.errors import InvalidRequestError

app = typer.Typer(no_args_is_help=True, help="Reports: usage by project, institution kind, region, site...")
FIELDS = (
    "group",
    "bucket",
    "gpu_hours",
    "segments",
    "jobs",
    "energy_kwh",
    "co2_kg",
    "cost_krw",
    "flops",
    "wall_hours",
    "mean_gpus",
    "max_gpus",
    "waited_jobs",
    "avg_wait_h",
    "p90_wait_h",
)
FORMATS = ("table", "csv", "json")
LEDGER_BY = ("project", "lineage")
TRANSPARENCY_FORMATS = ("md", "json", "csv")
TARGET_FIELDS = (
    "target_id",
    "name",
    "kind",
    "period",
    "status",
    "value",
    "threshold",
    "unit",
    "margin",
    "group_gpu_hours",
    "scope_gpu_hours",
    "jobs",
)


@app.command("usage")
def usage(
    by: Annotated[
        str, typer.Option(help="project, institution, kind, region, program, site or model")
    ] = "project",
    period: Annotated[
        str | None, typer.Option(help="YYYY, YYYY-Qn, YYYY-MM, YYYY-Www or YYYY-MM-DD (default: all time)")
    ] = None,
    every: Annotated[
        str | None, typer.Option(help="a time series: day, week, month, quarter or year")
    ] = None,
    output: Annotated[str, typer.Option("--format", help="table (default), csv or json")] = "table",
    plot: Annotated[Path | None, typer.Option(help="also draw GPU-hours per group into this PNG")] = None,
) -> None:
    """Usage of the segments that ended in the period, one line per group (and bucket), largest first:
    GPU-hours, jobs, job size (GPUs, weighted by time), waits of the jobs that ended, energy and won
    (CSV and JSON add wall hours, the largest job, CO2 and FLOPs)."""
    if output not in FORMATS:
        raise InvalidRequestError(f"--format must be one of {', '.join(FORMATS)}, got {output!r}")
    if plot is not None:
        from gpucommons.cli.report_plot import require_matplotlib

        require_matplotlib()  # before asking the server, so a missing extra fails at once
    report = make_client().usage_report(by, period, every)
    if plot is not None:
        from gpucommons.cli.report_plot import plot_usage

        plot_usage(report, plot)
    if output == "json":
        print(report.model_dump_json(indent=2))
        return
    if output == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(FIELDS)
        for line in report.lines:
            writer.writerow(getattr(line, f) for f in FIELDS)
        return
    from rich.table import Table

    # The figures people compare at a glance; CSV and JSON carry every one (wall hours, CO2, FLOPs too).
    head = (
        report.by,
        *(("when",) if report.every else ()),
        "GPU-h",
        "jobs",
        "avg GPUs",
        "wait h",
        "p90 wait",
        "kWh",
        "won",
    )
    title = f"usage, {report.period}" + (f", per {report.every}" if report.every else "")
    table = Table(title=title, box=None, pad_edge=False)
    for name in head:
        label = name in (report.by, "when")
        table.add_column(name, no_wrap=label, justify="left" if label else "right")
    for line in report.lines:
        table.add_row(
            line.group,
            *((line.bucket,) if report.every else ()),
            f"{line.gpu_hours:,.1f}",
            f"{line.jobs:,}",
            f"{line.mean_gpus:,.1f}",
            _hours_or_dash(line.avg_wait_h),
            _hours_or_dash(line.p90_wait_h),
            f"{line.energy_kwh:,.1f}",
            f"{line.cost_krw:,}",
        )
    console.print(table)


def _hours_or_dash(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


@app.command("compute")
def compute(
    by: Annotated[str, typer.Option(help="project, or lineage (each project's model lineages)")] = "project",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Cumulative training FLOPs against the AI Basic Act's 10^26 FLOPs threshold, per project or per
    model lineage."""
    if by not in LEDGER_BY:
        raise InvalidRequestError(f"--by must be one of {', '.join(LEDGER_BY)}, got {by!r}")
    ledger = make_client().compute_ledger(by)
    if as_json:
        print(ledger.model_dump_json(indent=2))
        return
    from rich.table import Table

    head = ("project", *(("lineage",) if by == "lineage" else ()), "GPU-hours", "FLOPs", "of 10^26", "status")
    table = Table(*head, title=f"training compute (FLOPs at {ledger.utilization_assumed:.0%} of BF16 peak)")
    for line in ledger.lines:
        table.add_row(
            line.project,
            *((line.lineage or "(none)",) if by == "lineage" else ()),
            f"{line.gpu_hours:,.1f}",
            f"{line.flops:.3g}",
            f"{line.share_of_threshold:.1%}",
            line.status,
        )
    console.print(table)


@app.command("transparency")
def transparency(
    project: Annotated[str, typer.Argument(help="project name or id")],
    output: Annotated[str, typer.Option("--format", help="md (default), json or csv")] = "md",
    to: Annotated[Path | None, typer.Option("--output", help="write it to this file")] = None,
) -> None:
    """A project's transparency report on its training compute, to publish: totals, by lineage, by
    accelerator model and by month, and how they were estimated."""
    if output not in TRANSPARENCY_FORMATS:
        raise InvalidRequestError(
            f"--format must be one of {', '.join(TRANSPARENCY_FORMATS)}, got {output!r}"
        )
    from gpucommons.cli.transparency import render

    text = render(make_client().transparency_report(project), output)
    if to is None:
        sys.stdout.write(text)
        return
    try:
        to.write_text(text, encoding="utf-8")
    except OSError as error:
        raise InvalidRequestError(f"cannot write {to}: {error.strerror or error}") from None
    console.print(f"wrote {to}")


@app.command("targets")
def targets(
    period: Annotated[
        str | None,
        typer.Option(help="YYYY, YYYY-Qn, YYYY-MM, YYYY-Www or YYYY-MM-DD (default: each target's last)"),
    ] = None,
    output: Annotated[str, typer.Option("--format", help="table (default), csv or json")] = "table",
) -> None:
    """Each declared target over the period: met, missed or no data, and by how much."""
    if output not in FORMATS:
        raise InvalidRequestError(f"--format must be one of {', '.join(FORMATS)}, got {output!r}")
    report = make_client().target_report(period)
    if output == "json":
        print(report.model_dump_json(indent=2))
        return
    if output == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(TARGET_FIELDS)
        for line in report.lines:
            writer.writerow("" if getattr(line, f) is None else getattr(line, f) for f in TARGET_FIELDS)
        return
    from rich.table import Table

    table = Table(
        "id", "target", "period", "attained", "bound", "margin", "status", title=f"targets, {report.period}"
    )
    for line in report.lines:
        unit = " %" if line.unit == "%" else f" {line.unit}"
        table.add_row(
            str(line.target_id),
            f"{line.name}: {line.description}",
            line.period,
            "-" if line.value is None else f"{line.value:,.2f}{unit}",
            f"{line.threshold:,.2f}{unit}",
            "-" if line.margin is None else f"{line.margin:+,.2f}{unit}",
            line.status,
        )
    console.print(table)
