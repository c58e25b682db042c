"""A plan's figures (matplotlib, the ``plots`` extra, drawn as ``sim/plots.py`` draws: Agg canvas, no
pyplot): wait CDFs per kind for each arrangement, busy GPUs over time, GPU-hours per kind side by side,
and the frontier of pool size against the targets' figures from a size search."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gpucommons.metering.pricing import SECONDS_PER_HOUR
from gpucommons.planner.report import kinds_of
from gpucommons.sim.plots import MIN_PLOTTED_WAIT_S, _new_figure

WAIT_CDF_PNG = "wait_cdf.png"
UTILIZATION_PNG = "utilization.png"
GPU_HOURS_PNG = "gpu_hours.png"
FRONTIER_PNG = "frontier.png"


def write_wait_cdfs(path: Path, runs: Sequence[dict[str, Any]]) -> None:
    figure = _new_figure(4.0 * len(runs), 3.6)
    axes = figure.subplots(1, len(runs), sharey=True, squeeze=False)[0]
    for ax, run in zip(axes, runs, strict=True):
        for kind, entry in sorted(run["waits"].items()):
            quantiles = [max(q, MIN_PLOTTED_WAIT_S) / SECONDS_PER_HOUR for q in entry["quantiles_s"]]
            if not quantiles:
                continue
            finished = len(entry["waits_s"])
            share = finished / (finished + entry["unfinished"]) if finished + entry["unfinished"] else 0.0
            ys = [share * i / (len(quantiles) - 1) for i in range(len(quantiles))]
            ax.plot(quantiles, ys, drawstyle="steps-post", label=kind)
        ax.set_xscale("log")
        ax.set_title(run["policy"], fontsize=10)
        ax.set_xlabel("wait (h)")
        ax.set_ylim(0.0, 1.0)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("share of the kind's jobs")
    axes[-1].legend(loc="lower right", fontsize=7)
    figure.savefig(path)


def write_utilization(path: Path, runs: Sequence[dict[str, Any]]) -> None:
    figure = _new_figure(8.0, 3.6)
    ax = figure.subplots()
    for run in runs:
        series = run["busy_gpus_by_hour"]
        ax.plot(range(len(series)), [b / run["gpus"] for b in series], linewidth=0.9, label=run["policy"])
    ax.axvline(run["period_s"] / SECONDS_PER_HOUR, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("hours since the first arrival (dotted: end of the period)")
    ax.set_ylabel("busy share of the pool")
    ax.set_ylim(0.0, 1.05)
    ax.legend(fontsize=8)
    figure.savefig(path)


def write_gpu_hours(path: Path, runs: Sequence[dict[str, Any]]) -> None:
    kinds = kinds_of(runs)
    figure = _new_figure(8.0, 3.6)
    ax = figure.subplots()
    width = 0.8 / max(1, len(runs))
    for i, run in enumerate(runs):
        values = [run["per_kind"].get(k, {}).get("gpu_hours", 0.0) for k in kinds]
        ax.bar([x + i * width for x in range(len(kinds))], values, width, label=run["policy"])
    ax.set_xticks([x + width * (len(runs) - 1) / 2 for x in range(len(kinds))], kinds, fontsize=8)
    ax.set_ylabel("GPU-hours delivered")
    ax.legend(fontsize=8)
    figure.savefig(path)


def write_compare_plots(out: Path, runs: Sequence[dict[str, Any]]) -> list[str]:
    write_wait_cdfs(out / WAIT_CDF_PNG, runs)
    write_utilization(out / UTILIZATION_PNG, runs)
    write_gpu_hours(out / GPU_HOURS_PNG, runs)
    return [WAIT_CDF_PNG, UTILIZATION_PNG, GPU_HOURS_PNG]


def write_frontier(
    path: Path, points: Mapping[int, Mapping[str, float]], limits: Mapping[str, float]
) -> None:
    """Each target's figure (h) against pool size in servers; dashed: its limit."""
    figure = _new_figure(7.0, 3.8)
    ax = figure.subplots()
    sizes = sorted(points)
    for name, limit_s in limits.items():
        ys = [points[s][name] / SECONDS_PER_HOUR for s in sizes]
        line = ax.plot(sizes, [y if math.isfinite(y) else math.nan for y in ys], marker="o", label=name)
        ax.axhline(limit_s / SECONDS_PER_HOUR, color=line[0].get_color(), linestyle="--", linewidth=0.8)
    ax.set_xlabel("servers in the pool")
    ax.set_ylabel("wait (h)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    figure.savefig(path)
