"""Assembling a run from names: which trace, offered-load scaling, default quotas."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from gpucommons.domain.job import Job
from gpucommons.errors import InvalidRequestError


def scale_load(jobs: Sequence[Job], factor: float) -> list[Job]:
    """Multiply the arrival rate by ``factor``: submit times are compressed toward the first one."""
    if not (factor > 0 and math.isfinite(factor)):
        raise InvalidRequestError(f"--load must be a finite number > 0, got {factor}")
    if factor == 1 or not jobs:
        return list(jobs)
    t0 = min(j.submit_s for j in jobs)
    return [replace(j, submit_s=t0 + (j.submit_s - t0) / factor) for j in jobs]


def proportional_quotas(jobs: Sequence[Job], total_gpus: int) -> dict[str, int]:
    """Guaranteed GPUs per tenant in proportion to its share of the trace's GPU-seconds (floors; the
    remainder stays unguaranteed and can only be borrowed)."""
    demand: dict[str, float] = defaultdict(float)
    for j in jobs:
        demand[j.tenant] += j.gpus * j.duration_s
    total = sum(demand.values())
    if total <= 0:
        return {}
    return {t: int(total_gpus * d / total) for t, d in sorted(demand.items())}
