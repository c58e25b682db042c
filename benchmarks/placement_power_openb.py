"""Power of the openb fill experiment: PWR and FGD+PWR (Lettich et al., CCGrid 2025) against FGD.

Fills Alibaba openb to 130 % GPU demand (the FGD paper's experiment, ``sim/fill.py``) with ``best-fit``,
``fgd``, ``pwr`` and ``fgd-pwr`` (PWR weight 0.1, the default), plus ``fgd-pwr`` at PWR weights 0.05
and 0.2 (the paper's 50/950 and 200/800), and prints per placer the final GPU allocation ratio and the
datacenter power under the paper's node power model (``policy/placement/pwr.py``) at equal GPU
allocation (10, 30, 50, 70, 90 % of GPUs allocated, interpolated on the curve) and at the end, then the
saving of each PWR placer against ``fgd`` at those points beside the published figure.

The paper runs seeds 42-51; five of them (42-46) keep the run within ~5 minutes on a 2-core machine
(``--seeds 10`` for all ten).

    .venv/bin/python benchmarks/placement_power_openb.py [--workers 2] [--seeds 5]
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.policy.capacity import Capacity
from gpucommons.policy.placement.pwr import FgdPwrPlacer, PowerMeter
from gpucommons.policy.protocols import Placer
from gpucommons.policy.registry import build_placer
from gpucommons.sim.fill import run_fill
from gpucommons.sim.traces.locate import trace_file
from gpucommons.sim.traces.openb import NODE_FILE, POD_FILE, read_openb_cluster, read_openb_pods

DEMAND = 1.3
POINTS = (0.1, 0.3, 0.5, 0.7, 0.9)  # GPU allocation ratios at which power is compared
PLACERS = ("best-fit", "fgd", "pwr", "fgd-pwr", "fgd-pwr w=0.05", "fgd-pwr w=0.2")
WEIGHTS = {"fgd-pwr w=0.05": 0.05, "fgd-pwr w=0.2": 0.2}
PUBLISHED_ALLOCATION = {"fgd": 95.39, "best-fit": 93.08}  # Weng et al., ATC'23, seeds 42-51
PUBLISHED_SAVING = "up to ~20"  # Lettich et al.: PWR+FGD vs FGD at comparable GPU allocation

Row = tuple[str, int, float, float, list[tuple[float, float]]]


def _openb() -> tuple[Cluster, list[Job]]:
    folder = "alibaba-gpu-v2023-openb"
    return read_openb_cluster(trace_file(folder, NODE_FILE)), read_openb_pods(trace_file(folder, POD_FILE))


def _placer(name: str) -> Placer:
    weight = WEIGHTS.get(name)
    return FgdPwrPlacer(pwr_weight=weight) if weight is not None else build_placer(name)


def _one(args: tuple[str, int]) -> Row:
    name, seed = args
    cluster, pods = _openb()
    result = run_fill(pods, cluster, _placer(name), DEMAND, seed)
    idle = PowerMeter().cluster_w(Capacity(cluster))
    curve = [(0.0, idle), *((p.gpu_allocation_ratio, p.power_w) for p in result.curve)]
    return name, seed, result.gpu_allocation_ratio, result.power_w, curve


def power_at(curve: list[tuple[float, float]], allocation: float) -> float:
    """Power when ``allocation`` of the GPUs is allocated, interpolated between curve points."""
    for (a0, w0), (a1, w1) in itertools.pairwise(curve):
        if a1 >= allocation:
            return w0 if a1 == a0 else w0 + (w1 - w0) * (allocation - a0) / (a1 - a0)
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=5, help="seeds 42 .. 42+N-1 (the paper: 10)")
    args = parser.parse_args()
    seeds = tuple(range(42, 42 + args.seeds))
    started = time.perf_counter()
    tasks = [(name, seed) for seed in seeds for name in PLACERS]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = list(pool.map(_one, tasks))
    elapsed = time.perf_counter() - started

    note = "" if len(seeds) == 10 else f" ({len(seeds)} of the paper's 10 seeds, to fit ~5 minutes)"
    print(f"openb fill to {DEMAND:.0%} GPU demand, seeds {seeds[0]}-{seeds[-1]}{note}")
    print("power (kW) under the PWR paper's node power model at equal GPU allocation; mean over seeds")
    points = [f"P@{a:.0%}" for a in POINTS]
    head = f"{'placer':<15} {'alloc %':>8} {'stdev':>6} {'paper %':>8}"
    print(head + "".join(f" {p:>8}" for p in points) + f" {'P end':>8}")
    power: dict[str, list[float]] = {}
    for name in PLACERS:
        mine = [r for r in rows if r[0] == name]
        ratios = [100 * r[2] for r in mine]
        at = [statistics.mean(power_at(r[4], a) for r in mine) / 1000 for a in POINTS]
        power[name] = [*at, statistics.mean(r[3] for r in mine) / 1000]
        paper = PUBLISHED_ALLOCATION.get(name)
        print(
            f"{name:<15} {statistics.mean(ratios):8.2f} {statistics.stdev(ratios):6.2f} "
            f"{paper if paper is not None else '':>8}" + "".join(f" {w:8.1f}" for w in power[name])
        )
    print()
    print("saving vs fgd (%), same allocation points; published: PWR+FGD vs FGD at comparable allocation")
    print(f"{'placer':<15}" + "".join(f" {p:>8}" for p in points) + f" {'end':>8} {'published':>10}")
    base = power["fgd"]
    for name in PLACERS:
        if name in ("fgd", "best-fit"):
            continue
        saving = [100 * (b - w) / b for b, w in zip(base, power[name], strict=True)]
        published = PUBLISHED_SAVING if name.startswith("fgd-pwr") else ""
        print(f"{name:<15}" + "".join(f" {s:8.1f}" for s in saving) + f" {published:>10}")
    print(f"\n{len(tasks)} fills in {elapsed:.0f} s with {args.workers} workers")


if __name__ == "__main__":
    main()
