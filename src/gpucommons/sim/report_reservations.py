"""What a replay's reservations cost and deliver (design note 0016).

- Start delay of each reservation job: its first start minus the start of the occurrence it was made
  for (``None`` when it never started).
- Reserved GPU-hours: each occurrence's GPUs x its window, clipped to the run; idle: those the
  reserving tenant's jobs did not use (its device-hours inside the window, at most the reserved ones).
- The other tenants' average and 99th-percentile wait (finished jobs), and, against a replay of the same
  workload without the reservations, their delay in GPU-hours: the sum over their jobs finished in both
  of GPUs x (wait with - wait without), net (a job that waits less counts against one that waits more).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gpucommons.metering.pricing import SECONDS_PER_HOUR
from gpucommons.sim.reservations import ReservationJob, occurrence_starts
from gpucommons.sim.runner import SimResult
from gpucommons.sim.store import JobRecord


def start_delays(result: SimResult, made: Sequence[ReservationJob]) -> list[dict[str, Any]]:
    """One row per reservation job, in the order they were made."""
    records = {r.job.id: r for r in result.records}
    rows = []
    for job in made:
        start_s = records[job.job_id].first_start_s
        rows.append(
            {
                "reservation": job.reservation_id,
                "reserved_start_s": job.reserved_start_s,
                "start_s": start_s,
                "delay_s": None if start_s is None else start_s - job.reserved_start_s,
            }
        )
    return rows


def reserved_gpu_hours(result: SimResult) -> tuple[float, float]:
    """(reserved GPU-hours within the run, of which idle: unused by the reserving tenant)."""
    reserved_s = idle_s = 0.0
    for res in result.reservations:
        used = [s for s in result.segments if s.tenant == res.tenant]
        for start_s in occurrence_starts(res, result.end_s):
            lo, hi = max(start_s, result.start_s), min(start_s + res.duration_s, result.end_s)
            if hi <= lo:
                continue
            window_s = res.gpus * (hi - lo)
            held_s = sum(s.devices * max(0.0, min(s.end_s, hi) - max(s.start_s, lo)) for s in used)
            reserved_s += window_s
            idle_s += window_s - min(window_s, held_s)
    return reserved_s / SECONDS_PER_HOUR, idle_s / SECONDS_PER_HOUR


def _wait_s(record: JobRecord) -> float:
    assert record.end_s is not None, "only finished jobs have a wait"
    return record.end_s - record.job.submit_s - record.run_s


def others_waits_s(result: SimResult) -> tuple[float, float]:
    """(average, 99th-percentile) wait of the finished jobs of tenants that reserve nothing."""
    reserving = {r.tenant for r in result.reservations}
    waits = np.array(
        [_wait_s(r) for r in result.records if r.end_s is not None and r.job.tenant not in reserving],
        dtype=np.float64,
    )
    if not len(waits):
        return 0.0, 0.0
    return float(np.mean(waits)), float(np.percentile(waits, 99))


def delay_gpu_hours(result: SimResult, baseline: SimResult) -> float:
    """The other tenants' net extra wait against ``baseline``, in GPU-hours (see the module docstring)."""
    reserving = {r.tenant for r in result.reservations}
    before = {r.job.id: r for r in baseline.records if r.end_s is not None}
    delay_gpu_s = 0.0
    for r in result.records:
        if r.end_s is None or r.job.tenant in reserving or r.job.id not in before:
            continue
        delay_gpu_s += r.job.gpus * (_wait_s(r) - _wait_s(before[r.job.id]))
    return delay_gpu_s / SECONDS_PER_HOUR


def reservation_figures(result: SimResult, made: Sequence[ReservationJob]) -> dict[str, Any]:
    """The figures a replay with reservations adds to its summary."""
    delays = [row["delay_s"] for row in start_delays(result, made)]
    reserved_h, idle_h = reserved_gpu_hours(result)
    avg_s, p99_s = others_waits_s(result)
    started = [d for d in delays if d is not None]
    return {
        "reservation_start_delays_s": delays,
        "reservation_max_start_delay_s": max(started) if started else None,
        "reservation_jobs_never_started": len(delays) - len(started),
        "reserved_gpu_hours": reserved_h,
        "reserved_idle_gpu_hours": idle_h,
        "others_avg_wait_s": avg_s,
        "others_p99_wait_s": p99_s,
    }
