"""Placement quality and speed on Alibaba openb: the FGD paper's fill experiment for every placer.

Runs each registered placer over seeds 42-51 at 130 % demand, prints mean/stdev GPU allocation ratio and
placements per second, writes ``placement_openb.png`` (allocation ratio vs arrived demand, mean over
seeds) when matplotlib is installed, then times best-fit and fgd-plus on a 200,000-GPU cluster
(25,000 nodes x 8 GPUs).

    .venv/bin/python benchmarks/placement_openb.py [--workers 2] [--out benchmarks/out]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.cluster import Cluster, Pool, Site
from gpucommons.domain.job import Job
from gpucommons.policy.capacity import Capacity
from gpucommons.policy.registry import PLACERS, build_placer
from gpucommons.sim.fill import WorkloadAware, run_fill
from gpucommons.sim.traces.locate import trace_file
from gpucommons.sim.traces.openb import NODE_FILE, POD_FILE, read_openb_cluster, read_openb_pods

SEEDS = tuple(range(42, 52))
DEMAND = 1.3
REFERENCE = {"fgd": 95.39, "best-fit": 93.08, "packing": 92.00}  # ATC'23, same experiment


def _openb() -> tuple[Cluster, list[Job]]:
    folder = "alibaba-gpu-v2023-openb"
    return read_openb_cluster(trace_file(folder, NODE_FILE)), read_openb_pods(trace_file(folder, POD_FILE))


def _one(args: tuple[str, int]) -> tuple[str, int, float, list[tuple[float, float]], float]:
    name, seed = args
    cluster, pods = _openb()
    started = time.perf_counter()
    result = run_fill(pods, cluster, build_placer(name), DEMAND, seed)
    rate = result.arrived / (time.perf_counter() - started)
    curve = [(p.arrived_demand, p.gpu_allocation_ratio) for p in result.curve]
    return name, seed, result.gpu_allocation_ratio, curve, rate


def quality(workers: int, out: Path) -> None:
    tasks = [(name, seed) for name in PLACERS for seed in SEEDS]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(_one, tasks))
    print(f"fill to {DEMAND:.0%} of openb GPUs, seeds {SEEDS[0]}-{SEEDS[-1]}")
    print(f"{'placer':<10} {'mean %':>8} {'stdev':>6} {'paper %':>8} {'placements/s':>13}")
    curves: dict[str, list[list[tuple[float, float]]]] = {}
    for name in PLACERS:
        mine = [r for r in results if r[0] == name]
        ratios = [100 * r[2] for r in mine]
        curves[name] = [r[3] for r in mine]
        paper = REFERENCE.get(name)
        print(
            f"{name:<10} {statistics.mean(ratios):8.2f} {statistics.stdev(ratios):6.2f} "
            f"{paper if paper is not None else '':>8} {statistics.mean(r[4] for r in mine):13,.0f}"
        )
    _plot(curves, out / "placement_openb.png")


def _plot(curves: dict[str, list[list[tuple[float, float]]]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install -e '.[dev]')")
        return
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, runs in curves.items():
        length = min(len(r) for r in runs)
        xs = [runs[0][i][0] * 100 for i in range(length)]
        ys = [statistics.mean(r[i][1] for r in runs) * 100 for i in range(length)]
        ax.plot(xs, ys, label=name)
    ax.set_xlabel("arrived GPU demand (% of cluster GPUs)")
    ax.set_ylabel("GPU allocation ratio (%)")
    ax.set_title("openb fill experiment, mean of seeds 42-51")
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"plot: {path}")


def large(placements: int) -> None:
    """Placements per second on 25,000 x 8 GPUs, with openb pod shapes in shuffled order."""
    _, pods = _openb()
    pool = Pool(
        name="big",
        site="s",
        model=CATALOG["G2"],
        node_count=25_000,
        gpus_per_node=8,
        cpus_per_node=96,
        memory_gib_per_node=384,
    )
    cluster = Cluster.build("large", (Site("s"),), (pool,))
    stream = list(pods)
    random.Random(42).shuffle(stream)
    stream = [p for p in stream if p.gpus > 0][:placements]
    for name in ("best-fit", "fgd-plus"):
        placer = build_placer(name)
        if isinstance(placer, WorkloadAware):
            placer.observe_workload(pods)
        capacity = Capacity(cluster)
        started = time.perf_counter()
        for job in stream:
            placer.place(job, capacity)
        elapsed = time.perf_counter() - started
        print(
            f"{cluster.total_gpus:,} GPUs, {name}: {len(stream) / elapsed:,.0f} placements/s "
            f"({len(stream):,} placements, {len(capacity.classes()):,} node states at the end)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    parser.add_argument("--large-placements", type=int, default=5_000)
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    if not args.skip_quality:
        quality(args.workers, args.out)
    large(args.large_placements)


if __name__ == "__main__":
    main()
