"""One plan run (a scenario at a pool size under an arrangement, with a seed), what it measures, and
running many of them on a process pool with a cache.

A run's result is a plain JSON-able dict, so it travels between processes and sits in the cache as
is. The cache key is a digest of the scenario file's text, the run's parameters, the seed and the code
version (a digest of the package's source), so editing the scenario, a parameter or the simulator
recomputes exactly the runs it touches. A run is deterministic: the same key gives the same result.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from gpucommons.domain.job import Job
from gpucommons.planner.measures import kind_waits, occupancy
from gpucommons.planner.policies import ARRANGEMENTS, build_arrangement
from gpucommons.planner.pool import pool_cost, scaled_cluster
from gpucommons.planner.scenario import PlanScenario, parse_plan_scenario
from gpucommons.planner.workload import Workload, generate_workload
from gpucommons.sim.metrics import jain, kind_rows, summarize, tenant_rows
from gpucommons.sim.runner import SimOptions, simulate

SUMMARY_KEYS = (
    "jobs_total",
    "jobs_finished",
    "jobs_never_served",
    "jobs_unfinished",
    "avg_wait_s",
    "p99_wait_s",
    "utilization",
    "jain_fairness",
    "gpu_hours_in_window",
    "gpu_hours_total",
    "energy_kwh",
    "co2_kg",
    "cost_krw",
    "makespan_s",
    "preemptions",
)


@dataclass(frozen=True)
class RunSpec:
    """One run: ``scenario_text`` is the file's text (so a worker parses it itself), ``source`` where
    it came from (relative cluster paths resolve against it)."""

    scenario_text: str
    source: str
    policy: str
    servers: int
    seed: int

    @property
    def label(self) -> str:
        return f"{self.policy}-{self.servers}s-seed{self.seed}"

    def key(self) -> str:
        fields = {**asdict(self), "code": code_version()}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]


@cache
def code_version() -> str:
    """A digest of every Python source of the package: a change anywhere recomputes cached runs."""
    digest = hashlib.sha256()
    root = resources.files("gpucommons")
    for path in sorted(Path(str(root)).rglob("*.py")):
        digest.update(str(path.relative_to(Path(str(root)))).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def runnable_jobs(workload: Workload, policy: str) -> tuple[list[Job], list[Job]]:
    """The jobs to simulate, and those left out as never served: without borrowing a tenant with no
    guarantee is never admitted (the quota stage's rule), so replaying its jobs would only make every
    cycle walk a queue that cannot move. They still count: never served, waiting forever."""
    if ARRANGEMENTS[policy].borrowing:
        return list(workload.jobs), []
    guaranteed = {t.tenant for t in workload.tenants if t.funded and t.gpus > 0}
    kept = [j for j in workload.jobs if j.tenant in guaranteed]
    return kept, [j for j in workload.jobs if j.tenant not in guaranteed]


def run_once(run: RunSpec) -> dict[str, Any]:
    """Simulate ``run`` and measure it (top level, so a process pool can call it)."""
    scenario = parse_plan_scenario(run.scenario_text, Path(run.source))
    started = time.perf_counter()
    cluster = scaled_cluster(scenario, run.servers)
    workload = generate_workload(scenario.spec, run.seed)
    options = SimOptions(
        quota_gpus=workload.quotas(), awards=workload.awards(), tenant_kinds=workload.kinds()
    )
    config = build_arrangement(run.policy, scenario.spec.site_caps)
    jobs, never = runnable_jobs(workload, run.policy)
    result = simulate(jobs, cluster, config, options)
    kinds = kind_rows(result)
    tenants = tenant_rows(result)
    summary = summarize(result, tenants, kinds)
    # Tenants left out of the replay were never served: service 0 in Jain's index, as in metrics.py.
    services = [row["service"] for row in tenants] + [0.0] * len({j.tenant for j in never})
    guarantees = {t.tenant: t.gpus for t in workload.tenants if t.funded}
    cost = pool_cost(cluster, scenario.spec.capex_krw_per_gpu, options.power_model)
    measured = {
        "label": run.label,
        "scenario": scenario.name,
        "policy": run.policy,
        "servers": run.servers,
        "seed": run.seed,
        "gpus": cluster.total_gpus,
        "guaranteed_gpus": workload.guaranteed_gpus,
        **{key: summary[key] for key in SUMMARY_KEYS},
        "jobs_total": summary["jobs_total"] + len(never),
        "jobs_never_served": summary["jobs_never_served"] + len(never),
        "jain_fairness": jain(services),
        **occupancy(result, guarantees),
        "per_kind": {row["kind"]: {k: v for k, v in row.items() if k != "kind"} for row in kinds},
        "waits": kind_waits(result, never),
        "pool": asdict(cost),
        "period_s": result.last_arrival_s - result.start_s,
        "wall_s": round(time.perf_counter() - started, 3),
    }
    normal: dict[str, Any] = json.loads(json.dumps(measured))  # as the cache gives it back: lists, str keys
    return normal


class RunCache:
    """Results by key, one JSON file each under ``folder`` (``None``: no cache)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def get(self, run: RunSpec) -> dict[str, Any] | None:
        if self.folder is None:
            return None
        path = self.folder / f"{run.key()}.json"
        if not path.exists():
            return None
        loaded: dict[str, Any] = json.loads(path.read_text())
        return loaded

    def put(self, run: RunSpec, result: dict[str, Any]) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f"{run.key()}.json.tmp"
        tmp.write_text(json.dumps(result, sort_keys=True))
        tmp.replace(self.folder / f"{run.key()}.json")


Progress = Callable[[RunSpec, bool], None]  # called as each run is done; True: it came from the cache


def run_all(
    runs: Sequence[RunSpec],
    cache: RunCache,
    workers: int,
    on_done: Progress | None = None,
    refresh: bool = False,
) -> list[dict[str, Any]]:
    """Every run's result, in the order given; cached ones are read, the rest computed on ``workers``
    processes (1: in this process). ``refresh``: compute even what is cached (and cache it anew)."""
    results: dict[int, dict[str, Any]] = {}
    todo: list[int] = []
    for i, run in enumerate(runs):
        hit = None if refresh else cache.get(run)
        if hit is not None:
            results[i] = hit
            if on_done:
                on_done(run, True)
        else:
            todo.append(i)
    if workers <= 1 or len(todo) <= 1:
        for i in todo:
            results[i] = _finish(runs[i], run_once(runs[i]), cache, on_done)
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(todo))) as pool:
            futures = {pool.submit(run_once, runs[i]): i for i in todo}
            for future in as_completed(futures):
                i = futures[future]
                results[i] = _finish(runs[i], future.result(), cache, on_done)
    return [results[i] for i in range(len(runs))]


def _finish(
    run: RunSpec, result: dict[str, Any], cache: RunCache, on_done: Progress | None
) -> dict[str, Any]:
    cache.put(run, result)
    if on_done:
        on_done(run, False)
    return result


def spec_for(scenario: PlanScenario, policy: str, servers: int, seed: int) -> RunSpec:
    return RunSpec(scenario.text, scenario.source, policy, servers, seed)
