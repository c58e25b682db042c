"""What a site power cap does to waiting: full Philly at load 5.3 (~80 % offered) under ``las`` and
``quota``, uncapped and capped at 80 % and 60 % of the uncapped run's peak site power.

    .venv/bin/python benchmarks/power_caps.py
    .venv/bin/python benchmarks/power_caps.py --policies las --fractions 0.9,0.7,0.5 --limit-jobs 20000

The uncapped run of each policy is measured first; its peak projected draw (``domain/power.py``: busy
devices at 0.8 x TDP plus busy nodes' base power, x PUE 1.56) sets the caps. Prints, per run: the cap,
peak MW, energy (MWh), average JCT and p99 wait (hours), utilization over the arrival window, and the
simulator's wall seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace

from gpucommons.clusterfile import load_cluster
from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.policy.constraints import Commons
from gpucommons.policy.registry import build_policy
from gpucommons.sim.metrics import summarize
from gpucommons.sim.runner import SimOptions, SimResult, simulate
from gpucommons.sim.scenario import proportional_quotas, scale_load
from gpucommons.sim.traces.locate import trace_file
from gpucommons.sim.traces.philly import read_philly


def capped(cluster: Cluster, cap_mw: float | None) -> Cluster:
    sites = tuple(replace(s, power_cap_mw=cap_mw) for s in cluster.sites)
    return Cluster.build(cluster.name, sites, cluster.pools)


def replay(jobs: list[Job], cluster: Cluster, policy: str) -> tuple[SimResult, float]:
    options = SimOptions(quota_gpus=proportional_quotas(jobs, cluster.total_gpus))
    started = time.perf_counter()
    result = simulate(jobs, cluster, build_policy(policy, commons=Commons()), options)
    return result, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policies", default="las,quota")
    parser.add_argument("--load", type=float, default=5.3)
    parser.add_argument("--fractions", default="0.8,0.6", help="caps as fractions of the uncapped peak")
    parser.add_argument("--limit-jobs", type=int, default=None)
    args = parser.parse_args()
    jobs = scale_load(read_philly(trace_file("philly-derived", "philly.csv"), args.limit_jobs), args.load)
    base = load_cluster("philly")
    fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
    print(f"full Philly ({len(jobs):,} jobs) at load {args.load:g}, {base.total_gpus:,} GPUs, one site")
    header = (
        f"{'policy':<7} {'cap':>9} {'cap MW':>7} {'peak MW':>8} {'MWh':>9} {'avg JCT h':>10} "
        f"{'p99 wait h':>11} {'util':>6} {'finished':>9} {'wall s':>7}"
    )
    print(header)
    print("-" * len(header))
    for policy in (p.strip() for p in args.policies.split(",") if p.strip()):
        uncapped_peak_mw = 0.0
        for fraction in [None, *fractions]:
            cap_mw = None if fraction is None else uncapped_peak_mw * fraction
            result, wall_s = replay(jobs, capped(base, cap_mw), policy)
            peak_mw = max(result.power.peak_w.values()) / 1e6
            if fraction is None:
                uncapped_peak_mw = peak_mw
            summary = summarize(result)
            energy_mwh = sum(result.power.energy_kwh().values()) / 1000
            label = "none" if fraction is None else f"{fraction:.0%} peak"
            cap_text = "-" if cap_mw is None else f"{cap_mw:.3f}"
            print(
                f"{policy:<7} {label:>9} {cap_text:>7} {peak_mw:>8.3f} {energy_mwh:>9,.1f} "
                f"{summary['avg_jct_s'] / 3600:>10.2f} {summary['p99_wait_s'] / 3600:>11.2f} "
                f"{summary['utilization']:>6.3f} {summary['jobs_finished']:>9,} {wall_s:>7.1f}",
                flush=True,
            )
            if result.power.breaches:
                print(f"  cap breached {len(result.power.breaches)} times", file=sys.stderr)


if __name__ == "__main__":
    main()
