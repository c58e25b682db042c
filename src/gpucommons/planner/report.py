"""A plan's report folder: ``report.md`` with the summary table, ``summary.csv``, and per run
``runs/LABEL/results.json`` (every figure) and ``results.csv`` (one row per institution kind). Nothing
in these files depends on the wall clock except each run's ``wall_s``, kept out of ``report.md`` and
``summary.csv`` so the same command writes the same report."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpucommons.metering.pricing import SECONDS_PER_HOUR

KIND_FIELDS = (
    "kind",
    "tenants",
    "jobs",
    "jobs_finished",
    "gpu_hours",
    "avg_wait_s",
    "p90_wait_s",
    "gpu_hours_share",
)


def kinds_of(runs: Sequence[dict[str, Any]]) -> list[str]:
    return sorted({kind for run in runs for kind in run["per_kind"]})


def _hours(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / SECONDS_PER_HOUR:,.1f}"


def summary_rows(runs: Sequence[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """(metric, one cell per run) for the table printed and written, the arrangements compared first."""
    rows: list[tuple[str, list[str]]] = [
        ("GPUs in the pool", [f"{r['gpus']:,}" for r in runs]),
        ("GPU-hours delivered in the period", [f"{r['gpu_hours_in_window']:,.0f}" for r in runs]),
        ("idle reserved GPU-hours", [f"{r['idle_reserved_gpu_hours']:,.0f}" for r in runs]),
        ("utilization in the period", [f"{r['utilization']:.3f}" for r in runs]),
        ("jobs never served", [f"{r['jobs_never_served']:,} of {r['jobs_total']:,}" for r in runs]),
        ("Jain's index (tenants)", [f"{r['jain_fairness']:.3f}" for r in runs]),
    ]
    for kind in kinds_of(runs):
        stats = [r["per_kind"].get(kind, {}) for r in runs]
        rows.append((f"avg wait {kind} (h)", [_hours(s.get("avg_wait_s")) for s in stats]))
        rows.append((f"p90 wait {kind} (h)", [_hours(s.get("p90_wait_s")) for s in stats]))
        rows.append(
            (f"never served {kind}", [f"{r['waits'].get(kind, {}).get('unfinished', 0):,}" for r in runs])
        )
    return rows


def write_run(out: Path, run: dict[str, Any]) -> None:
    folder = out / "runs" / run["label"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(run, indent=1, sort_keys=True) + "\n")
    with (folder / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=KIND_FIELDS)
        writer.writeheader()
        for kind, stats in sorted(run["per_kind"].items()):
            writer.writerow({"kind": kind, **{k: stats.get(k) for k in KIND_FIELDS[1:]}})


def write_compare(
    out: Path, title: str, runs: Sequence[dict[str, Any]], plots: Sequence[str], notes: str
) -> None:
    """report.md and summary.csv of a comparison, and each run's files."""
    out.mkdir(parents=True, exist_ok=True)
    for run in runs:
        write_run(out, run)
    rows = summary_rows(runs)
    header = ["metric", *(r["policy"] for r in runs)]
    with (out / "summary.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([name, *cells] for name, cells in rows)
    lines = [f"# {title}", "", notes, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([name, *cells]) + " |" for name, cells in rows]
    lines += ["", *(f"![{Path(p).stem}]({p})" for p in plots)]
    lines += ["", "Per run: `runs/LABEL/results.json` (every figure) and `results.csv` (per kind)."]
    (out / "report.md").write_text("\n".join(lines) + "\n")
