"""Scale benchmark of the capacity planner: the korea-2030 scenario (25,000 servers = 200,000 devices,
a quarter of them NPUs) under one arrangement, for a chosen number of days of demand.

    .venv/bin/python benchmarks/plan_2030.py                  # 30 days, the commons
    .venv/bin/python benchmarks/plan_2030.py --days 1         # a day: the rate, quickly
    .venv/bin/python benchmarks/plan_2030.py --days 2 --baseline-days 1 --tracemalloc

Prints the jobs generated, wall seconds for generating the workload and for the run (simulate plus the
planner's measures), jobs and events per second, and peak memory: the process's ``ru_maxrss`` and, with
``--tracemalloc``, Python's traced peak (slower). ``--baseline-days`` runs the same at that many days
first, in the same process, so the figures come with a baseline of the same machine and moment.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from gpucommons.planner.runs import RunSpec, run_once
from gpucommons.planner.scenario import load_plan_scenario, parse_plan_scenario
from gpucommons.planner.workload import generate_workload

KIB_PER_MIB = 1024.0


def with_days(text: str, days: float) -> str:
    return re.sub(r"(?m)^period_days = .*$", f"period_days = {days}", text)


def measure(policy: str, days: float, seed: int) -> dict[str, Any]:
    plan = load_plan_scenario("korea-2030")
    text = with_days(plan.text, days)
    started = time.perf_counter()

    jobs = len(generate_workload(parse_plan_scenario(text, Path(plan.source)).spec, seed).jobs)
    generate_s = time.perf_counter() - started
    started = time.perf_counter()
    result = run_once(RunSpec(text, plan.source, policy, plan.spec.servers or 25_000, seed))
    run_s = time.perf_counter() - started
    return {
        "days": days,
        "policy": policy,
        "devices": result["gpus"],
        "jobs": jobs,
        "generate_s": round(generate_s, 2),
        "run_s": round(run_s, 2),
        "jobs_per_s": round(jobs / run_s, 1),
        "utilization": round(result["utilization"], 3),
        "jobs_never_served": result["jobs_never_served"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MIB, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--baseline-days", type=float, default=None)
    parser.add_argument("--policy", default="commons")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures: list[dict[str, Any]] = []
    for days in [d for d in (args.baseline_days, args.days) if d is not None]:
        if args.tracemalloc:
            tracemalloc.start()
        row = measure(args.policy, days, args.seed)
        if args.tracemalloc:
            row["traced_peak_mib"] = round(tracemalloc.get_traced_memory()[1] / KIB_PER_MIB**2, 1)
            tracemalloc.stop()
        figures.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
