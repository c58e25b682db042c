"""A seeded synthetic workload shaped like Philly: Poisson arrivals, GPU counts with Philly's mix
(93 % single-GPU), log-normal durations (median ~1,144 s, heavy tail) and Zipf-skewed tenants.

``offered_load`` sets the arrival rate so that mean busy GPUs = offered_load x cluster GPUs.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from gpucommons.domain.job import Job
from gpucommons.errors import InvalidRequestError

GPU_MIX = ((1, 0.932), (2, 0.022), (4, 0.023), (8, 0.020), (16, 0.0024), (32, 0.0006))


@dataclass(frozen=True)
class SyntheticSpec:
    jobs: int
    cluster_gpus: int
    offered_load: float = 0.8
    tenants: int = 15
    median_duration_s: float = 1_144.0
    sigma: float = 2.0
    max_duration_s: float = 14 * 86_400.0


def generate(spec: SyntheticSpec, seed: int) -> list[Job]:
    if spec.jobs <= 0:
        raise InvalidRequestError(f"synthetic workload needs jobs > 0, got {spec.jobs}")
    if spec.cluster_gpus <= 0 or not spec.offered_load > 0:
        raise InvalidRequestError(
            f"synthetic workload needs a cluster with GPUs and a load > 0, got {spec.cluster_gpus} GPUs "
            f"and load {spec.offered_load}"
        )
    rng = random.Random(seed)
    sizes = [g for g, _ in GPU_MIX]
    weights = [w for _, w in GPU_MIX]
    mu = math.log(spec.median_duration_s)
    mean_duration = min(spec.max_duration_s, math.exp(mu + spec.sigma**2 / 2))
    mean_gpus = sum(g * w for g, w in GPU_MIX) / sum(weights)
    rate = spec.offered_load * spec.cluster_gpus / (mean_gpus * mean_duration)
    tenant_weights = [1.0 / (k + 1) for k in range(spec.tenants)]
    t = 0.0
    jobs = []
    for i in range(1, spec.jobs + 1):
        t += rng.expovariate(rate)
        duration = max(1.0, min(spec.max_duration_s, rng.lognormvariate(mu, spec.sigma)))
        gpus = rng.choices(sizes, weights)[0]
        tenant = f"t{rng.choices(range(spec.tenants), tenant_weights)[0]:02d}"
        jobs.append(Job(id=i, tenant=tenant, gpus=gpus, submit_s=t, duration_s=duration, estimate_s=duration))
    return jobs
