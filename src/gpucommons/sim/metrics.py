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
  J = (sum x)^2 / (n * sum x^2), 1 = every tenant equally well served. Every tenant that submitted a
  job counts; one with no finished job has x_t = 0, so a policy cannot look fair by starving a tenant.
- GPU-hours delivered come from the run segments (a share of one device counts as its fraction):
  ``gpu_hours_total`` over the whole run, ``gpu_hours_in_window`` clipped to the arrival window.
- Per institution kind (``SimOptions.tenant_kinds``; tenants without one are ``unlisted``): jobs
  submitted and finished, GPU-hours delivered (segments, so finished or not), the mean and 90th
  percentile wait of finished jobs (``None`` where none finished) and the kind's share of GPU-hours.
- ``jobs_never_served``: jobs that never started; ``jobs_unfinished``: started, not finished at the end.
- Energy, carbon, cost and site power: ``sim/report_power.py``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from gpucommons.metering.pricing import SECONDS_PER_HOUR
from gpucommons.sim.report_power import power_figures
from gpucommons.sim.runner import SimResult
from gpucommons.sim.store import JobRecord, Segment
from gpucommons.sim.tenants import UNLISTED_KIND

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


def kind_of(result: SimResult, tenant: str) -> str:
    return result.tenant_kinds.get(tenant, UNLISTED_KIND)


def tenant_rows(result: SimResult) -> list[dict[str, Any]]:
    """One row per tenant that submitted a job. ``jobs``, ``gpu_hours`` and the averages cover its
    finished jobs; a tenant with none has ``jobs`` 0, service 0 and no averages (``None``)."""
    submitted: Counter[str] = Counter(r.job.tenant for r in result.records)
    by_tenant: dict[str, list[JobRecord]] = defaultdict(list)
    for r in _finished(result.records):
        by_tenant[r.job.tenant].append(r)
    rows = []
    for tenant in sorted(submitted):
        recs = by_tenant.get(tenant, [])
        row: dict[str, Any] = {
            "tenant": tenant,
            "jobs": 0,
            "gpu_hours": 0.0,
            "avg_jct_s": None,
            "avg_wait_s": None,
            "service": 0.0,
        }
        if recs:
            jct = np.array([_jct_s(r) for r in recs], dtype=np.float64)
            run = np.array([r.run_s for r in recs])
            gpus = np.array([r.job.gpus for r in recs])
            row.update(
                jobs=len(recs),
                gpu_hours=float(np.sum(run * gpus)) / SECONDS_PER_HOUR,
                avg_jct_s=float(np.mean(jct)),
                avg_wait_s=float(np.mean(jct - run)),
                service=float(np.sum(run) / np.sum(jct)) if np.sum(jct) > 0 else 1.0,
            )
        row.update(jobs_submitted=submitted[tenant], kind=kind_of(result, tenant))
        rows.append(row)
    return rows


def gpu_hours(segments: Sequence[Segment], from_s: float = -np.inf, to_s: float = np.inf) -> float:
    """Device-hours the segments held within ``[from_s, to_s]`` (shares count as their fraction)."""
    held_s = sum(s.devices * max(0.0, min(s.end_s, to_s) - max(s.start_s, from_s)) for s in segments)
    return held_s / SECONDS_PER_HOUR


def waits_s_by_kind(result: SimResult) -> dict[str, list[float]]:
    """The waits of each kind's finished jobs, in submission order (every kind with a job has a list)."""
    waits_s: dict[str, list[float]] = {}
    for r in result.records:
        kind_waits = waits_s.setdefault(kind_of(result, r.job.tenant), [])
        if r.end_s is not None:
            kind_waits.append(_jct_s(r) - r.run_s)
    return waits_s


def kind_rows(result: SimResult) -> list[dict[str, Any]]:
    """One row per institution kind with a submitted job, in name order (kinds.csv)."""
    tenants: dict[str, set[str]] = defaultdict(set)
    jobs: Counter[str] = Counter()
    for r in result.records:
        kind = kind_of(result, r.job.tenant)
        tenants[kind].add(r.job.tenant)
        jobs[kind] += 1
    waits_s = waits_s_by_kind(result)
    held_s: dict[str, float] = defaultdict(float)
    for s in result.segments:
        held_s[kind_of(result, s.tenant)] += s.devices * (s.end_s - s.start_s)
    total_s = sum(held_s.values())
    rows = []
    for kind in sorted(jobs):
        wait = np.array(waits_s[kind], dtype=np.float64)
        rows.append(
            {
                "kind": kind,
                "tenants": len(tenants[kind]),
                "jobs": jobs[kind],
                "jobs_finished": len(wait),
                "gpu_hours": held_s.get(kind, 0.0) / SECONDS_PER_HOUR,
                "avg_wait_s": float(np.mean(wait)) if len(wait) else None,
                "p90_wait_s": float(np.percentile(wait, 90)) if len(wait) else None,
                "gpu_hours_share": held_s.get(kind, 0.0) / total_s if total_s > 0 else 0.0,
            }
        )
    return rows


def unserved_counts(records: Sequence[JobRecord]) -> dict[str, int]:
    """Jobs the run never started, and jobs it started but left unfinished (preempted, never resumed)."""
    never = sum(1 for r in records if r.first_start_s is None)
    unfinished = sum(1 for r in records if r.first_start_s is not None and r.end_s is None)
    return {"jobs_never_served": never, "jobs_unfinished": unfinished}


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else 0.0


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else 0.0


def summarize(
    result: SimResult, tenants: list[dict[str, Any]] | None = None, kinds: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The run's headline figures; pass ``tenant_rows(result)`` and ``kind_rows(result)`` if already
    computed (the CLI writes them to CSV too)."""
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
    if kinds is None:
        kinds = kind_rows(result)
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
        **unserved_counts(result.records),
        "gpu_hours_total": gpu_hours(result.segments),
        "gpu_hours_in_window": gpu_hours(result.segments, result.start_s, result.last_arrival_s),
        "per_kind": {row["kind"]: {k: v for k, v in row.items() if k != "kind"} for row in kinds},
        **power_figures(result),
    }
