"""Full Philly replay under each policy and offered load: speed and schedule quality.

    .venv/bin/python benchmarks/sim_philly.py                      # every policy, loads 1 and 5.3
    .venv/bin/python benchmarks/sim_philly.py --policies fifo,las --loads 1 --json out.json
    .venv/bin/python benchmarks/sim_philly.py --limit-jobs 20000   # a prefix, for a quick check

Each run happens in a forked child so its peak resident memory (``ru_maxrss``: the interpreter, the
trace and the run) is its own; ``--tracemalloc`` reports the peak of Python allocations instead
(slower: tracing roughly doubles the wall time). Wall seconds cover ``simulate`` only, not reading the
trace. Events are arrivals plus finish events popped (stale ones included); cycles are scheduling
cycles run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from gpucommons.clusterfile import load_cluster
from gpucommons.domain.job import Job
from gpucommons.policy.registry import POLICIES, build_policy
from gpucommons.sim.metrics import summarize
from gpucommons.sim.runner import SimOptions, simulate
from gpucommons.sim.scenario import proportional_quotas, scale_load
from gpucommons.sim.traces.locate import trace_file
from gpucommons.sim.traces.philly import read_philly

JOBS: list[Job] = []  # the trace, read once in the parent and inherited by each forked run


def run_one(policy: str, load: float, placement: str, use_tracemalloc: bool) -> dict[str, Any]:
    cluster = load_cluster("philly")
    jobs = scale_load(JOBS, load)
    options = SimOptions(quota_gpus=proportional_quotas(jobs, cluster.total_gpus))
    config = build_policy(policy, placement)
    if use_tracemalloc:
        tracemalloc.start()
    started = time.perf_counter()
    result = simulate(jobs, cluster, config, options)
    wall_s = time.perf_counter() - started
    if use_tracemalloc:
        peak_mib = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    summary = summarize(result)
    return {
        "policy": policy,
        "placement": placement,
        "load": load,
        "jobs": len(jobs),
        "wall_s": wall_s,
        "events_per_s": result.events / wall_s if wall_s > 0 else 0.0,
        "cycles": result.cycles,
        "peak_mib": peak_mib,
        "peak_kind": "tracemalloc" if use_tracemalloc else "maxrss",
        **summary,
    }


def run_isolated(policy: str, load: float, placement: str, use_tracemalloc: bool) -> dict[str, Any]:
    if sys.platform != "linux":
        return run_one(policy, load, placement, use_tracemalloc)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        return pool.submit(run_one, policy, load, placement, use_tracemalloc).result()


COLUMNS: tuple[tuple[str, str, str], ...] = (  # (heading, row key, format spec)
    ("policy", "policy", "<10"),
    ("load", "load", ">5g"),
    ("jobs", "jobs", ">7,"),
    ("wall s", "wall_s", ">8.2f"),
    ("events/s", "events_per_s", ">10,.0f"),
    ("cycles", "cycles", ">8,"),
    ("peak MiB", "peak_mib", ">9.0f"),
    ("avg JCT h", "avg_jct_h", ">10.2f"),
    ("p99 wait h", "p99_wait_h", ">11.2f"),
    ("util", "utilization", ">6.3f"),
    ("Jain", "jain_fairness", ">6.3f"),
    ("finished", "jobs_finished", ">9,"),
    ("preempt", "preemptions", ">8,"),
)


def print_table(rows: list[dict[str, Any]]) -> None:
    widths = [int("".join(ch for ch in spec.split(".")[0] if ch.isdigit())) for _, _, spec in COLUMNS]
    header = " ".join(
        f"{title:{'<' if i == 0 else '>'}{w}}"
        for i, ((title, _, _), w) in enumerate(zip(COLUMNS, widths, strict=True))
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        values = {**r, "avg_jct_h": r["avg_jct_s"] / 3600, "p99_wait_h": r["p99_wait_s"] / 3600}
        print(" ".join(f"{values[key]:{spec}}" for _, key, spec in COLUMNS))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policies", default=",".join(POLICIES), help="comma-separated policy names")
    parser.add_argument("--loads", default="1,5.3", help="comma-separated arrival-rate multipliers")
    parser.add_argument("--placement", default="best-fit")
    parser.add_argument("--limit-jobs", type=int, default=None, help="replay only the first N jobs")
    parser.add_argument("--tracemalloc", action="store_true", help="report the Python allocation peak")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the rows to this file")
    args = parser.parse_args()

    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        parser.error(f"unknown policy {', '.join(unknown)}; known: {', '.join(POLICIES)}")
    try:
        loads = [float(x) for x in args.loads.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--loads must be comma-separated numbers, got {args.loads!r}")

    started = time.perf_counter()
    JOBS.extend(read_philly(trace_file("philly-derived", "philly.csv"), args.limit_jobs))
    print(f"read {len(JOBS):,} Philly jobs in {time.perf_counter() - started:.2f} s", file=sys.stderr)

    rows = []
    for policy in policies:
        for load in loads:
            row = run_isolated(policy, load, args.placement, args.tracemalloc)
            print(f"  {policy} load {load:g}: {row['wall_s']:.2f} s", file=sys.stderr)
            rows.append(row)
    print_table(rows)
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump(rows, handle, indent=2, sort_keys=True)
            handle.write("\n")


if __name__ == "__main__":
    main()
