"""Reservations and checkpoint-aware preemption on the full Philly trace at load 5.3 (design note 0016).

    .venv/bin/python benchmarks/reservations_philly.py                    # both parts, las and quota
    .venv/bin/python benchmarks/reservations_philly.py --part reservation --policies las
    .venv/bin/python benchmarks/reservations_philly.py --limit-jobs 20000 # a prefix, for a quick check

Part 1, a reservation: a consortium tenant holds 512 P40 GPUs (64 of the 231 eight-GPU nodes) for 24 h
every week from hour 24 while jobs arrive, and submits a 512-GPU, 24-hour gang at each start. The
same workload (the trace plus the gangs) is replayed with and without the reservation: without it the
gang waits until enough nodes happen to drain. Printed: each week's start delay of the gang (start -
reserved start), the other tenants' average and p99 wait both ways, and what the reservation costs
them (their net extra wait in GPU-hours, their preemptions, and the reserved GPU-hours the consortium
left idle).

Part 2, checkpoints: a share of the trace's jobs declares a checkpoint interval, the replay models it
(a preempted job keeps only the work up to its last checkpoint, one without an interval loses its
whole run), and each policy runs with the old victim choice (LAS: lowest queue, then newest; quota:
newest) and with checkpoint-aware victims (LAS: lowest queue, then the least work lost per GPU; quota:
the least lost per GPU; then newest), side by side.

Each replay runs in a forked child; wall seconds cover ``simulate`` only.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from gpucommons.clusterfile import load_cluster
from gpucommons.domain.job import Job
from gpucommons.domain.reservation import Reservation
from gpucommons.policy.constraints import Commons
from gpucommons.policy.registry import build_policy
from gpucommons.sim.metrics import summarize
from gpucommons.sim.report_reservations import (
    delay_gpu_hours,
    others_waits_s,
    reserved_gpu_hours,
    start_delays,
)
from gpucommons.sim.reservations import CheckpointPlan, ReservationPlan, build_workload
from gpucommons.sim.runner import SimOptions, SimResult, simulate
from gpucommons.sim.scenario import proportional_quotas, scale_load
from gpucommons.sim.traces.locate import trace_file
from gpucommons.sim.traces.philly import read_philly

HOUR_S = 3600.0
LOAD = 5.3
SEED = 7
TENANT = "consortium"
JOBS: list[Job] = []  # the trace, read once in the parent and inherited by each forked run


@dataclass(frozen=True)
class Setup:
    reservation_gpus: int = 512
    duration_h: float = 24.0
    start_h: float = 24.0
    every_h: float = 168.0
    interval_s: float = 1800.0
    fraction: float = 0.5

    def plan(self, last_arrival_s: float) -> ReservationPlan:
        """Weekly while jobs arrive: the occurrences that start by the last arrival (after it the
        replay only drains the trace's tail, which a standing reservation would merely idle)."""
        start_s = self.start_h * HOUR_S
        every_s = self.every_h * HOUR_S
        weeks = max(1, int((last_arrival_s - start_s) // every_s) + 1)
        reservation = Reservation(
            1,
            TENANT,
            self.reservation_gpus,
            start_s,
            start_s + self.duration_h * HOUR_S,
            model="P40",
            every_s=every_s,
            occurrences=weeks,
        )
        return ReservationPlan(reservation, job_gpus=self.reservation_gpus)


def _replay(policy: str, jobs: list[Job], options: SimOptions, aware: bool) -> tuple[SimResult, float]:
    cluster = load_cluster("philly")
    config = build_policy(policy, "best-fit", Commons(checkpoint_aware=aware))
    started = time.perf_counter()
    result = simulate(jobs, cluster, config, options)
    return result, time.perf_counter() - started


def reservation_pair(policy: str, setup: Setup) -> dict[str, Any]:
    """The same workload with and without the reservation."""
    cluster = load_cluster("philly")
    trace = scale_load(JOBS, LOAD)
    plan = setup.plan(max(j.submit_s for j in trace))
    workload = build_workload(trace, (plan,), None, SEED, cluster, "benchmark")
    base = SimOptions(quota_gpus=proportional_quotas(workload.jobs, cluster.total_gpus))
    with_res = SimOptions(quota_gpus=base.quota_gpus, reservations=workload.reservations)
    held, held_wall_s = _replay(policy, workload.jobs, with_res, False)
    free, free_wall_s = _replay(policy, workload.jobs, base, False)
    reserving = {TENANT}
    # ``free`` has no reservations: its report needs them to tell the consortium from the others.
    free_view = replace(free, reservations=workload.reservations)
    preempted = {
        name: sum(r.preemptions for r in res.records if r.job.tenant not in reserving)
        for name, res in (("with", held), ("without", free))
    }
    reserved_h, idle_h = reserved_gpu_hours(held)
    return {
        "policy": policy,
        "with": {"wall_s": held_wall_s, "waits_s": others_waits_s(held), "summary": summarize(held)},
        "without": {"wall_s": free_wall_s, "waits_s": others_waits_s(free_view), "summary": summarize(free)},
        "delays_with": start_delays(held, workload.made),
        "delays_without": start_delays(free, workload.made),
        "delay_gpu_h": delay_gpu_hours(held, free_view),
        "preempted": preempted,
        "reserved_gpu_h": reserved_h,
        "idle_gpu_h": idle_h,
    }


def checkpoint_pair(policy: str, setup: Setup) -> dict[str, Any]:
    """The same checkpointing workload with the old and the checkpoint-aware victim choice."""
    cluster = load_cluster("philly")
    trace = scale_load(JOBS, LOAD)
    plan = CheckpointPlan(setup.interval_s, setup.fraction)
    workload = build_workload(trace, (), plan, SEED, cluster, "benchmark")
    options = SimOptions(
        quota_gpus=proportional_quotas(workload.jobs, cluster.total_gpus), checkpointing=True
    )
    rows = {}
    for aware in (False, True):
        result, wall_s = _replay(policy, workload.jobs, options, aware)
        rows["aware" if aware else "old"] = {"wall_s": wall_s, **summarize(result)}
    return {"policy": policy, **rows}


def isolated(task: Any, *args: Any) -> Any:
    if sys.platform != "linux":
        return task(*args)
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork")) as pool:
        return pool.submit(task, *args).result()


def _h(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds / HOUR_S:.2f} h"


def print_reservation(row: dict[str, Any], setup: Setup) -> None:
    print(
        f"\n{row['policy']}: {setup.reservation_gpus}-GPU, {setup.duration_h:g} h reservation every "
        f"{setup.every_h:g} h from hour {setup.start_h:g} (Philly at load {LOAD})"
    )
    print(f"{'week':>4} {'reserved start h':>17} {'delay with':>12} {'delay without':>14}")
    for i, (a, b) in enumerate(zip(row["delays_with"], row["delays_without"], strict=True), start=1):
        print(f"{i:>4} {a['reserved_start_s'] / HOUR_S:>17.1f} {_h(a['delay_s']):>12} {_h(b['delay_s']):>14}")
    print(f"{'others':<10} {'avg wait h':>11} {'p99 wait h':>11} {'preemptions':>12} {'wall s':>8}")
    for name in ("without", "with"):
        avg_s, p99_s = row[name]["waits_s"]
        print(
            f"{name:<10} {avg_s / HOUR_S:>11.2f} {p99_s / HOUR_S:>11.2f} {row['preempted'][name]:>12,} "
            f"{row[name]['wall_s']:>8.1f}"
        )
    print(
        f"cost: others' net extra wait {row['delay_gpu_h']:,.0f} GPU-h; "
        f"reserved {row['reserved_gpu_h']:,.0f} GPU-h, of which idle {row['idle_gpu_h']:,.0f} GPU-h"
    )


def print_checkpoints(rows: list[dict[str, Any]], setup: Setup) -> None:
    print(
        f"\ncheckpoints: {setup.fraction:.0%} of jobs every {setup.interval_s / 60:g} min; loss = work "
        f"since the last checkpoint (Philly at load {LOAD})"
    )
    print(
        f"{'policy':<7} {'victims':<8} {'loss GPU-h':>11} {'preemptions':>12} {'avg JCT h':>10} "
        f"{'p99 wait h':>11} {'wall s':>8}"
    )
    for row in rows:
        for name in ("old", "aware"):
            r = row[name]
            print(
                f"{row['policy']:<7} {name:<8} {r['preemption_loss_gpu_s'] / HOUR_S:>11,.0f} "
                f"{r['preemptions']:>12,} {r['avg_jct_s'] / HOUR_S:>10.2f} {r['p99_wait_s'] / HOUR_S:>11.2f} "
                f"{r['wall_s']:>8.1f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--policies", default="las,quota", help="comma-separated policy names")
    parser.add_argument("--part", choices=("both", "reservation", "checkpoints"), default="both")
    parser.add_argument("--limit-jobs", type=int, default=None, help="replay only the first N jobs")
    args = parser.parse_args()
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    setup = Setup()

    started = time.perf_counter()
    JOBS.extend(read_philly(trace_file("philly-derived", "philly.csv"), args.limit_jobs))
    print(f"read {len(JOBS):,} Philly jobs in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    if args.part in ("both", "reservation"):
        for policy in policies:
            print_reservation(isolated(reservation_pair, policy, setup), setup)
    if args.part in ("both", "checkpoints"):
        print_checkpoints([isolated(checkpoint_pair, policy, setup) for policy in policies], setup)


if __name__ == "__main__":
    main()
