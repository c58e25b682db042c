"""Scale benchmark: a synthetic Philly-shaped workload on a 200,000-GPU cluster.

    .venv/bin/python benchmarks/sim_200k.py                          # 25,000 nodes x 8, 1,000,000 jobs
    .venv/bin/python benchmarks/sim_200k.py --jobs 20000 --nodes 500 # a quick check
    .venv/bin/python benchmarks/sim_200k.py --policy fifo --json out.json

The cluster is one pool of H100 nodes built in code; the workload comes from
``gpucommons.sim.traces.synthetic.generate`` at ``--load`` offered load (mean busy GPUs / cluster GPUs).
Wall seconds are reported separately for generating the workload and for ``simulate``; peak RSS is the
process's ``ru_maxrss`` at the end (interpreter, workload and run).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from typing import Any

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.cluster import Cluster, Pool, Site, Topology
from gpucommons.policy.registry import POLICIES, build_policy
from gpucommons.sim.metrics import summarize
from gpucommons.sim.runner import SimOptions, simulate
from gpucommons.sim.scenario import proportional_quotas
from gpucommons.sim.traces.synthetic import SyntheticSpec, generate

GPUS_PER_NODE = 8


def build_cluster(nodes: int) -> Cluster:
    pool = Pool(
        "h100",
        "site",
        CATALOG["H100"],
        nodes,
        GPUS_PER_NODE,
        cpus_per_node=112,
        topology=Topology(block_nodes=32),
    )
    return Cluster.build(f"synthetic-{nodes * GPUS_PER_NODE}", (Site("site"),), (pool,))


def run(args: argparse.Namespace) -> dict[str, Any]:
    cluster = build_cluster(args.nodes)
    started = time.perf_counter()
    spec = SyntheticSpec(jobs=args.jobs, cluster_gpus=cluster.total_gpus, offered_load=args.load)
    jobs = generate(spec, args.seed)
    generate_s = time.perf_counter() - started
    options = SimOptions(quota_gpus=proportional_quotas(jobs, cluster.total_gpus))
    config = build_policy(args.policy, args.placement)

    step = max(1, args.jobs // 10)

    def progress(done: int) -> None:
        if args.progress and done % step == 0:
            print(f"  {done:,} jobs finished, {time.perf_counter() - started:.1f} s", file=sys.stderr)

    started = time.perf_counter()
    result = simulate(jobs, cluster, config, options, on_progress=progress)
    wall_s = time.perf_counter() - started
    return {
        "policy": args.policy,
        "placement": args.placement,
        "nodes": args.nodes,
        "cluster_gpus": cluster.total_gpus,
        "jobs": len(jobs),
        "offered_load": args.load,
        "seed": args.seed,
        "generate_s": generate_s,
        "wall_s": wall_s,
        "events_per_s": result.events / wall_s if wall_s > 0 else 0.0,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        **summarize(result),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--nodes", type=int, default=25_000, help=f"{GPUS_PER_NODE} GPUs each")
    parser.add_argument("--policy", default="backfill", choices=sorted(POLICIES))
    parser.add_argument("--placement", default="best-fit")
    parser.add_argument("--load", type=float, default=0.8, help="offered load of the synthetic workload")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--progress", action="store_true", help="print progress every 10 % of jobs")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.jobs <= 0 or args.nodes <= 0 or not args.load > 0:
        parser.error("--jobs, --nodes and --load must be > 0")

    row = run(args)
    print(
        f"{row['policy']} on {row['nodes']:,} nodes / {row['cluster_gpus']:,} GPUs, {row['jobs']:,} jobs "
        f"(offered load {row['offered_load']:g}, seed {row['seed']})"
    )
    figures = [
        ("generate s", f"{row['generate_s']:.2f}"),
        ("simulate wall s", f"{row['wall_s']:.2f}"),
        ("events", f"{row['events']:,}"),
        ("events/s", f"{row['events_per_s']:,.0f}"),
        ("cycles", f"{row['cycles']:,}"),
        ("peak RSS MiB", f"{row['peak_rss_mib']:,.0f}"),
        ("jobs finished", f"{row['jobs_finished']:,} / {row['jobs_total']:,}"),
        ("avg JCT h", f"{row['avg_jct_s'] / 3600:.3f}"),
        ("p99 JCT h", f"{row['p99_jct_s'] / 3600:.3f}"),
        ("avg wait s", f"{row['avg_wait_s']:.1f}"),
        ("p99 wait s", f"{row['p99_wait_s']:.1f}"),
        ("avg bounded slowdown", f"{row['avg_bounded_slowdown']:.3f}"),
        ("utilization", f"{row['utilization']:.3f}"),
        ("Jain", f"{row['jain_fairness']:.3f}"),
        ("preemptions", f"{row['preemptions']:,}"),
    ]
    for name, value in figures:
        print(f"  {name:<22} {value:>16}")
    if args.json_path:
        with open(args.json_path, "w") as handle:
            json.dump(row, handle, indent=2, sort_keys=True)
            handle.write("\n")


if __name__ == "__main__":
    main()
