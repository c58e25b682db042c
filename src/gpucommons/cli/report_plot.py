"""The figure of ``gpuc report usage --plot``: GPU-hours per group, one bar each, or, for a time series,
one line per group across the buckets. Drawn on matplotlib's Agg canvas (the optional ``plots``
extra), as the replay's figures are."""

from __future__ import annotations

from pathlib import Path

from gpucommons.errors import ConfigError
from gpucommons.service.schemas.reports import UsageReportRead

DPI = 110


def require_matplotlib() -> None:
    """Fail before the report is asked for, with the install hint, when the plots extra is missing."""
    try:
        import matplotlib.backends.backend_agg  # noqa: F401
    except ImportError as exc:
        raise ConfigError("--plot needs matplotlib: pip install 'gpucommons[plots]'") from exc


def plot_usage(report: UsageReportRead, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    if report.every:
        buckets = sorted({line.bucket for line in report.lines})
        for group in sorted({line.group for line in report.lines}):
            hours = {line.bucket: line.gpu_hours for line in report.lines if line.group == group}
            axes.plot(buckets, [hours.get(b, 0.0) for b in buckets], marker="o", label=group)
        axes.set_xlabel(report.every)
        if report.lines:
            axes.legend(fontsize="small")
    else:
        axes.bar([line.group for line in report.lines], [line.gpu_hours for line in report.lines])
        axes.set_xlabel(report.by)
    axes.set_ylabel("GPU-hours")
    axes.set_title(f"usage by {report.by}, {report.period}")
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
