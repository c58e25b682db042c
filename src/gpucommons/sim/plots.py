"""The replay's two figures (``gpuc sim --plots``): each site's power against its cap, and the wait CDF
per institution kind.

matplotlib is an optional extra (``gpucommons[plots]``), so it is imported only here and only when
asked for; a missing install is a one-line ``ConfigError``, not a traceback. Figures are drawn on the
Agg canvas directly (no ``pyplot``), so no display and no global figure state are involved.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from gpucommons.domain.power import WATTS_PER_MW
from gpucommons.errors import ConfigError
from gpucommons.metering.pricing import SECONDS_PER_HOUR
from gpucommons.sim.report_power import cap_steps_mw, site_series
from gpucommons.sim.runner import SimResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PLOTS_NEED_MATPLOTLIB = "--plots needs matplotlib: pip install 'gpucommons[plots]'"
POWER_PNG = "power.png"
WAIT_CDF_PNG = "wait_cdf.png"
MIN_PLOTTED_WAIT_S = 1.0  # the log axis cannot show 0: shorter waits are drawn at 1 s
DPI = 110


def require_matplotlib() -> None:
    """Fail early, with the install hint, when the plots extra is missing."""
    try:
        import matplotlib.backends.backend_agg  # noqa: F401
    except ImportError as exc:
        raise ConfigError(PLOTS_NEED_MATPLOTLIB) from exc


def _new_figure(width_in: float, height_in: float) -> Figure:
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def write_power_png(path: Path, result: SimResult) -> None:
    """One panel per site: its draw over the run, and its cap as a dashed step line where it has one."""
    sites = result.cluster.sites
    figure = _new_figure(9.0, 1.0 + 2.2 * max(1, len(sites)))
    axes = figure.subplots(max(1, len(sites)), 1, sharex=True, squeeze=False)[:, 0]
    start_s, end_s = result.start_s, max(result.end_s, result.start_s)
    for ax, site in zip(axes, sites, strict=False):
        times_s, watts = site_series(result.power, site.name)
        if times_s:
            hours = [(t - start_s) / SECONDS_PER_HOUR for t in [*times_s, end_s]]
            mw = [w / WATTS_PER_MW for w in [*watts, watts[-1]]]
            ax.plot(hours, mw, drawstyle="steps-post", linewidth=0.8, label="draw")
        schedule = site.cap_schedule
        if schedule.capped:
            cap_t, cap_mw = cap_steps_mw(schedule, start_s, end_s)
            ax.plot(
                [(t - start_s) / SECONDS_PER_HOUR for t in cap_t],
                [c if math.isfinite(c) else math.nan for c in cap_mw],  # gaps where uncapped
                drawstyle="steps-post",
                linestyle="--",
                color="tab:red",
                linewidth=0.9,
                label="cap",
            )
        ax.set_title(site.name, fontsize=9, loc="left")
        ax.set_ylabel("MW")
        ax.set_ylim(bottom=0.0)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8)
    axes[-1].set_xlabel("hours since the first arrival")
    figure.savefig(path)


def write_wait_cdf_png(path: Path, waits_s_by_kind: dict[str, list[float]]) -> None:
    """The share of each kind's finished jobs that waited at most x seconds (log x axis)."""
    figure = _new_figure(7.0, 4.5)
    ax = figure.subplots()
    for kind in sorted(waits_s_by_kind):
        waits = sorted(max(w, MIN_PLOTTED_WAIT_S) for w in waits_s_by_kind[kind])
        if not waits:
            continue
        shares = [(i + 1) / len(waits) for i in range(len(waits))]
        ax.plot(waits, shares, drawstyle="steps-post", label=f"{kind} ({len(waits):,} jobs)")
    ax.set_xscale("log")
    ax.set_xlabel(f"wait (s; under {MIN_PLOTTED_WAIT_S:g} s drawn at {MIN_PLOTTED_WAIT_S:g} s)")
    ax.set_ylabel("share of finished jobs")
    ax.set_ylim(0.0, 1.0)
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize=8)
    figure.savefig(path)


def write_plots(out: Path, result: SimResult, waits_s_by_kind: dict[str, list[float]]) -> list[Path]:
    """Both figures into ``out``; returns their paths."""
    require_matplotlib()
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / POWER_PNG, out / WAIT_CDF_PNG]
    write_power_png(paths[0], result)
    write_wait_cdf_png(paths[1], waits_s_by_kind)
    return paths
