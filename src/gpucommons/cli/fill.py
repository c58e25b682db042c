"""``gpuc sim --mode fill``: the FGD paper's fill experiment; writes summary.json and curve.csv (both with
the datacenter power, ``power_w``, under the PWR paper's node power model)."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.policy.registry import build_placer
from gpucommons.sim.fill import run_fill


def run_fill_command(
    pods: Sequence[Job],
    cluster: Cluster,
    trace: str,
    placement: str,
    demand: float,
    seed: int,
    out: Path,
    quiet: bool,
) -> None:
    placer = build_placer(placement)
    started = time.perf_counter()
    result = run_fill(pods, cluster, placer, demand, seed)
    wall_s = time.perf_counter() - started
    summary: dict[str, Any] = {
        "mode": "fill",
        "placement": placement,
        "trace": trace,
        "cluster": cluster.name,
        "cluster_gpus": cluster.total_gpus,
        "seed": seed,
        "demand": demand,
        "pods_arrived": result.arrived,
        "pods_placed": result.placed,
        "pods_failed": result.failed,
        "arrived_demand": result.arrived_demand,
        "gpu_allocation_ratio": result.gpu_allocation_ratio,
        "fragmentation_ratio": result.fragmentation_ratio,
        "placements_per_s": round(result.arrived / wall_s, 1) if wall_s > 0 else None,
        "power_w": result.power_w,
        "sim_wall_s": round(wall_s, 3),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    with (out / "curve.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(
            handle,
            fieldnames=["arrived_demand", "gpu_allocation_ratio", "fragmentation_ratio", "power_w"],
        )
        writer.writeheader()
        writer.writerows(asdict(p) for p in result.curve)
    if not quiet:
        Console().print(
            f"{placement} fill to {demand:.0%} on {cluster.name} (seed {seed}): "
            f"GPU allocation {result.gpu_allocation_ratio:.2%}, "
            f"fragmentation {result.fragmentation_ratio:.2%}, "
            f"power {result.power_w / 1000:,.1f} kW, "
            f"{result.placed:,} placed / {result.failed:,} failed"
        )
