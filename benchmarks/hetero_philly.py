"""Heterogeneity-aware against heterogeneity-blind policies on three accelerator generations.

    .venv/bin/python benchmarks/hetero_philly.py                    # 2,000 jobs, loads 1 to 16
    .venv/bin/python benchmarks/hetero_philly.py --jobs 500 --loads 1 --policies las,hetero

The cluster is the ``hetero-3gen`` preset: 32 A100 (the reference, speed 1), 32 V100-class (0.6) and 32
K80-class (0.15) devices, speed-aware (design note 0009). The workload is Philly-derived: the trace's
jobs filtered as Pollux filters them (``duration >= 60 s``, ``gpu_time < 1,000 h``) and to at most 8
GPUs (one node), then every ``--thin``-th job, so that the trace's arrival pattern offers 96 GPUs about
what it offered Philly's 2,490; ``--loads`` then compresses the arrivals. A job's trace duration is
taken as its work in A100-seconds, and the trace's (oracle) durations are the jobs' time limits, as
in every replay of this trace here. Gavel (Narayanan et al., OSDI 2020) reports up to 3.5x lower
average JCT for its heterogeneity-aware policies than for blind ones on such a cluster.

Printed per load: average and p99 JCT, makespan and Jain's index of each policy, and the ratio of the
best blind policy's average JCT to ``hetero``'s (the goal is at least 1.4).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

from gpucommons.clusterfile import load_cluster
from gpucommons.domain.job import Job
from gpucommons.policy.registry import build_policy
from gpucommons.sim.metrics import summarize
from gpucommons.sim.runner import SimOptions, simulate
from gpucommons.sim.scenario import scale_load
from gpucommons.sim.traces.locate import trace_file
from gpucommons.sim.traces.philly import read_philly

BLIND = ("fifo", "las", "fairshare")
MAX_GPU_TIME_S = 1_000 * 3_600.0
MIN_DURATION_S = 60.0
GOAL = 1.4


def workload(jobs: int, thin: int) -> list[Job]:
    trace = read_philly(trace_file("philly-derived", "philly.csv"))
    kept = [
        j
        for j in trace
        if j.gpus <= 8 and j.duration_s >= MIN_DURATION_S and j.gpus * j.duration_s < MAX_GPU_TIME_S
    ][::thin][:jobs]
    t0 = kept[0].submit_s
    return [replace(j, id=i + 1, submit_s=j.submit_s - t0) for i, j in enumerate(kept)]


def run(policy: str, jobs: list[Job]) -> dict[str, Any]:
    cluster = load_cluster("hetero-3gen")
    started = time.perf_counter()
    result = simulate(jobs, cluster, build_policy(policy), SimOptions())
    summary = summarize(result)
    summary["wall_s"] = time.perf_counter() - started
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2_000)
    parser.add_argument("--thin", type=int, default=26, help="keep every N-th filtered trace job")
    parser.add_argument("--loads", default="1,2,4,8,16", help="comma-separated arrival-rate multipliers")
    parser.add_argument("--policies", default=",".join((*BLIND, "hetero")))
    args = parser.parse_args()
    base = workload(args.jobs, args.thin)
    policies = args.policies.split(",")
    print(f"hetero-3gen (32 A100 + 32 V100-class + 32 K80-class), {len(base)} Philly-derived jobs")
    head = ("load", "policy", "avg JCT h", "p99 JCT h", "makespan h", "Jain", "wall s")
    print(f"{head[0]:>5} {head[1]:<10} {head[2]:>10} {head[3]:>10} {head[4]:>11} {head[5]:>6} {head[6]:>7}")
    for load in (float(x) for x in args.loads.split(",")):
        jobs = scale_load(base, load)
        rows = {p: run(p, jobs) for p in policies}
        for policy, s in rows.items():
            print(
                f"{load:>5g} {policy:<10} {s['avg_jct_s'] / 3600:>10.2f} {s['p99_jct_s'] / 3600:>10.2f} "
                f"{s['makespan_s'] / 3600:>11.1f} {s['jain_fairness']:>6.3f} {s['wall_s']:>7.2f}"
            )
        blind = [rows[p]["avg_jct_s"] for p in BLIND if p in rows]
        if blind and "hetero" in rows:
            ratio = min(blind) / rows["hetero"]["avg_jct_s"]
            print(
                f"{load:>5g} best blind avg JCT / hetero: {ratio:.2f}x (goal >= {GOAL}x; Gavel: up to 3.5x)"
            )


if __name__ == "__main__":
    main()
