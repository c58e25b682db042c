"""Flat results of a run: per-job rows, per-tenant rows and the summary.

Definitions (all times in seconds):
- JCT = end - submit. Wait = JCT - time holding GPUs (all queueing, including after preemptions).
- Bounded slowdown = max(1, JCT / max(run time, 10 s)) (Feitelson's bound avoids tiny jobs dominating).
- Utilization = busy GPU-seconds / (cluster GPUs x span) over the arrival window (first to last submit):
  what the cluster delivered while work kept arriving. A compressed trace (``--load``) still ends with
  its longest jobs (Philly's longest runs 53 days), so the makespan-based figure
  (``utilization_makespan``, makespan = last end - first submit) mostly measures that tail.
- Jain's fairness over tenants of normalized service x_t = sum(run time) / sum(JCT) of the tenant's
  finished jobs (the share of its jobs' time in the system spent running; 1 = never waited):
  J = (sum x)^2 / (n * sum x^2), 1 = every tenant equally well served.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from gpucommons.sim.runner import SimResult
from gpucommons.sim.store import JobRecord

BOUNDED_SLOWDOWN_FLOOR_S = 10.0


def job_rows(result: SimResult) -> list[dict[str, Any]]:
    rows = []
    for r in result.records:
        jct = None if r.end_s is None else r.end_s - r.job.submit_s
        rows.append(
            {
                "job_id": r.job.id,
                "tenant": r.job.tenant,
                "gpus": r.job.gpus,
                "submit_s": r.job.submit_s,
                "first_start_s": r.first_start_s,
                "end_s": r.end_s,
                "duration_s": r.job.duration_s,
                "run_s": r.run_s,
                "jct_s": jct,
                "wait_s": None if jct is None else jct - r.run_s,
                "preemptions": r.preemptions,
            }
        )
    return rows


def _finished(records: Sequence[JobRecord]) -> list[JobRecord]:
    return [r for r in records if r.end_s is not None]


def _jct_s(record: JobRecord) -> float:
    assert record.end_s is not None, "only finished jobs have a JCT"
    return record.end_s - record.job.submit_s


def jain(values: Sequence[float]) -> float:
    if not values:
        return 1.0
    arr = np.asarray(values, dtype=float)
    denom = len(arr) * float(np.sum(arr * arr))
    return float(np.sum(arr) ** 2 / denom) if denom > 0 else 1.0


def tenant_rows(result: SimResult) -> list[dict[str, Any]]:
    by_tenant: dict[str, list[JobRecord]] = defaultdict(list)
    for r in _finished(result.records):
        by_tenant[r.job.tenant].append(r)
    rows = []
    for tenant in sorted(by_tenant):
        recs = by_tenant[tenant]
        jct = np.array([_jct_s(r) for r in recs], dtype=np.float64)
        run = np.array([r.run_s for r in recs])
        gpus = np.array([r.job.gpus for r in recs])
        rows.append(
            {
                "tenant": tenant,
                "jobs": len(recs),
                "gpu_hours": float(np.sum(run * gpus)) / 3600.0,
                "avg_jct_s": float(np.mean(jct)),
                "avg_wait_s": float(np.mean(jct - run)),
                "service": float(np.sum(run) / np.sum(jct)) if np.sum(jct) > 0 else 1.0,
            }
        )
    return rows


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else 0.0


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else 0.0


def summarize(result: SimResult, tenants: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The run's headline figures; pass ``tenant_rows(result)`` if already computed."""
    done = _finished(result.records)
    jct = np.array([_jct_s(r) for r in done], dtype=np.float64)
    run = np.array([r.run_s for r in done], dtype=np.float64)
    wait = jct - run
    slowdown = (
        np.maximum(1.0, jct / np.maximum(run, BOUNDED_SLOWDOWN_FLOOR_S)) if len(done) else np.array([1.0])
    )
    makespan = result.end_s - result.start_s
    capacity = result.total_gpus * makespan
    window = result.total_gpus * (result.last_arrival_s - result.start_s)

    if tenants is None:
        tenants = tenant_rows(result)
    return {
        "jobs_total": len(result.records),
        "jobs_finished": len(done),
        "avg_jct_s": _mean(jct),
        "median_jct_s": _percentile(jct, 50),
        "p95_jct_s": _percentile(jct, 95),
        "p99_jct_s": _percentile(jct, 99),
        "avg_wait_s": _mean(wait),
        "p99_wait_s": _percentile(wait, 99),
        "avg_bounded_slowdown": _mean(slowdown),
        "utilization": result.busy_gpu_s_arrivals / window if window > 0 else 0.0,
        "utilization_makespan": result.busy_gpu_s / capacity if capacity > 0 else 0.0,
        "makespan_s": makespan,
        "jain_fairness": jain([row["service"] for row in tenants]),
        "preemptions": sum(r.preemptions for r in result.records),
        "preemption_loss_gpu_s": result.preemption_loss_gpu_s,
        "events": result.events,
        "cycles": result.cycles,
    }
