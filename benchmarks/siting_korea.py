"""What site preference does on a multi-site pool: the ``korea-2026`` preset (three provider sites with
caps, PUE 1.3 / 1.2 / 1.3, a weekday demand-response window at provider-2) under a seeded synthetic
workload, with the ``siting`` stage off (the default: the placer chooses across sites) and on.

    .venv/bin/python benchmarks/siting_korea.py
    .venv/bin/python benchmarks/siting_korea.py --jobs 20000 --load 0.9 --policies quota,las --seed 3

Prints, per run: energy (MWh) and CO2 (t) with each site's share of the energy, average JCT and p99
wait (hours), utilization over the arrival window, jobs finished, and the simulator's wall seconds.
Both runs of a policy replay the same jobs; the figure to read is the ratio of the two.
"""

from __future__ import annotations

import argparse
import time

from gpucommons.clusterfile import load_cluster
from gpucommons.policy.constraints import Commons
from gpucommons.policy.registry import build_policy
from gpucommons.sim.metrics import summarize
from gpucommons.sim.report_power import power_figures
from gpucommons.sim.runner import SimOptions, simulate
from gpucommons.sim.scenario import proportional_quotas
from gpucommons.sim.traces.synthetic import SyntheticSpec, generate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policies", default="quota")
    parser.add_argument("--jobs", type=int, default=40_000)
    parser.add_argument("--load", type=float, default=0.8, help="offered load (busy GPUs / GPUs)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    cluster = load_cluster("korea-2026")
    jobs = generate(
        SyntheticSpec(jobs=args.jobs, cluster_gpus=cluster.total_gpus, offered_load=args.load), args.seed
    )
    sites = [s.name for s in cluster.sites]
    print(f"korea-2026 ({cluster.total_gpus:,} GPUs, sites {', '.join(sites)}), {len(jobs):,} synthetic jobs")
    print(f"at offered load {args.load:g}, seed {args.seed}")
    share_head = " ".join(f"{name:>11}" for name in sites)
    header = (
        f"{'policy':<7} {'siting':>6} {'MWh':>9} {'CO2 t':>8} {share_head} {'avg JCT h':>10} "
        f"{'p99 wait h':>11} {'util':>6} {'finished':>9} {'wall s':>7}"
    )
    print(header)
    print("-" * len(header))
    for policy in (p.strip() for p in args.policies.split(",") if p.strip()):
        for siting in (False, True):
            options = SimOptions(quota_gpus=proportional_quotas(jobs, cluster.total_gpus))
            config = build_policy(policy, commons=Commons(siting=siting))
            started = time.perf_counter()
            result = simulate(jobs, cluster, config, options)
            wall_s = time.perf_counter() - started
            summary = summarize(result)
            power = power_figures(result)
            total_kwh = power["energy_kwh"]
            shares = " ".join(
                f"{power['energy_kwh_by_site'][name] / total_kwh:>11.1%}" if total_kwh else f"{'-':>11}"
                for name in sites
            )
            print(
                f"{policy:<7} {'on' if siting else 'off':>6} {total_kwh / 1000:>9,.1f} "
                f"{power['co2_kg'] / 1000:>8,.1f} {shares} {summary['avg_jct_s'] / 3600:>10.2f} "
                f"{summary['p99_wait_s'] / 3600:>11.2f} {summary['utilization']:>6.3f} "
                f"{summary['jobs_finished']:>9,} {wall_s:>7.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
