"""What a plan reads off one simulator run, beyond ``sim.metrics.summarize``: the reserved GPU-hours
that stayed idle, busy GPUs over time, and every kind's waits (for targets over groups of kinds and
for the wait CDFs).

Idle reserved GPU-hours, over the period (first to last arrival): at each instant a funded tenant's
reserve is the part of its guarantee it does not use itself, ``max(0, guarantee - held)``; what stays
idle of all reserves together is ``min(sum of reserves, GPUs nobody holds)``. Under static partitions
nobody may borrow, so it equals the unused reserves; under the commons the lent part is not idle.

A job that never finished has no wait; for targets (``planner/targets.py``) it counts as waiting
forever, so a policy cannot meet a wait target by never serving a kind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from gpucommons.domain.job import Job
from gpucommons.metering.pricing import SECONDS_PER_HOUR
from gpucommons.sim.metrics import waits_s_by_kind
from gpucommons.sim.runner import SimResult

SERIES_BIN_S = 3600.0  # busy GPUs averaged per hour
CDF_POINTS = 101  # wait quantiles kept per kind (0, 1, ..., 100 %)


def _edges(result: SimResult) -> list[tuple[float, str, float]]:
    """(time, tenant, devices held from then on minus before) at each segment's start and end."""
    out: list[tuple[float, str, float]] = []
    for s in result.segments:
        out.append((s.start_s, s.tenant, s.devices))
        out.append((s.end_s, s.tenant, -s.devices))
    out.sort(key=lambda e: (e[0], e[2]))
    return out


def occupancy(result: SimResult, guarantees: Mapping[str, int]) -> dict[str, Any]:
    """Idle reserved GPU-hours in the period, and busy GPUs per hour bin over the whole run."""
    t0, t1 = result.start_s, result.last_arrival_s
    total = float(result.total_gpus)
    held: dict[str, float] = defaultdict(float)
    reserve = float(sum(guarantees.values()))  # sum of max(0, g - held) over funded tenants
    busy = 0.0
    idle_reserved_s = 0.0
    bins = int((result.end_s - t0) // SERIES_BIN_S) + 1
    busy_gpu_s = [0.0] * bins
    now = t0

    def spend(until: float) -> None:
        nonlocal idle_reserved_s
        lo, hi = max(now, t0), min(until, t1)
        if hi > lo:
            idle_reserved_s += min(reserve, total - busy) * (hi - lo)
        t = now
        while t < until:  # busy GPU-seconds into the hour bins the interval crosses
            index = int((t - t0) // SERIES_BIN_S)
            step_end = min(until, t0 + (index + 1) * SERIES_BIN_S)
            busy_gpu_s[min(index, bins - 1)] += busy * (step_end - t)
            t = step_end

    for when, tenant, devices in _edges(result):
        spend(when)
        now = when
        g = guarantees.get(tenant, 0)
        before = max(0.0, g - held[tenant])
        held[tenant] += devices
        reserve += max(0.0, g - held[tenant]) - before
        busy += devices
    spend(result.end_s)
    return {
        "idle_reserved_gpu_hours": idle_reserved_s / SECONDS_PER_HOUR,
        "reserved_gpu_hours": sum(guarantees.values()) * max(0.0, t1 - t0) / SECONDS_PER_HOUR,
        "busy_gpus_by_hour": [round(b / SERIES_BIN_S, 2) for b in busy_gpu_s],
    }


def _quantiles(values: list[float]) -> list[float]:
    if not values:
        return []
    ordered = sorted(values)
    last = len(ordered) - 1
    return [round(ordered[round(last * q / (CDF_POINTS - 1))], 1) for q in range(CDF_POINTS)]


def kind_waits(result: SimResult, left_out: Sequence[Job] = ()) -> dict[str, dict[str, Any]]:
    """Per kind: its finished jobs' waits rounded to whole seconds (for targets over groups), their
    quantiles (for the CDF plot) and how many of its jobs never finished (``left_out``: jobs the run
    did not replay because they could never start, ``planner/runs.py``)."""
    waits = waits_s_by_kind(result)
    submitted: dict[str, int] = defaultdict(int)
    for job in [*(r.job for r in result.records), *left_out]:
        kind = result.tenant_kinds.get(job.tenant, "unlisted")
        submitted[kind] += 1
        waits.setdefault(kind, [])
    return {
        kind: {
            "waits_s": [round(w) for w in values],
            "quantiles_s": _quantiles(values),
            "unfinished": submitted[kind] - len(values),
        }
        for kind, values in sorted(waits.items())
    }
