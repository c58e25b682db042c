"""Shape helpers shared by placers: which pools a job may use, and whether it can ever fit."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.policy.decisions import PendingReason


@lru_cache(maxsize=4096)
def accepted_pools(cluster: Cluster, accepted_models: frozenset[str]) -> tuple[int, ...]:
    """Indices of the pools whose model the job accepts (all pools when the list is empty)."""
    return tuple(
        i for i, p in enumerate(cluster.pools) if not accepted_models or p.model.name in accepted_models
    )


@lru_cache(maxsize=65536)
def _fits_pool(cluster: Cluster, pool: int, gpus: int, gpus_per_node: int | None) -> bool:
    p = cluster.pools[pool]
    if p.node_count == 0:
        return False
    if gpus_per_node is None:
        return gpus <= p.gpus
    return (
        gpus_per_node <= p.gpus_per_node
        and gpus % gpus_per_node == 0
        and gpus // gpus_per_node <= p.node_count
    )


def even_gang(job: Job, cluster: Cluster) -> Job:
    """``job`` with a fixed, even gang shape: one node when some accepted pool's nodes are big enough,
    else the largest per-node count that divides its GPUs and fits a node. Jobs that set
    ``gpus_per_node`` or share a GPU are returned as they are."""
    if job.gpus_per_node is not None or job.shared:
        return job
    largest = max(
        (cluster.pools[p].gpus_per_node for p in accepted_pools(cluster, job.accepted_models)), default=0
    )
    per_node = next((d for d in range(min(job.gpus, largest), 0, -1) if job.gpus % d == 0), job.gpus)
    return replace(job, gpus_per_node=per_node)


def never_fits_reason(job: Job, cluster: Cluster) -> PendingReason | None:
    """A reason when no accepted pool could hold the job even if it were empty; else ``None``."""
    return _never_fits(cluster, job.gpus, job.gpus_per_node, job.accepted_models)


@lru_cache(maxsize=65536)
def _never_fits(
    cluster: Cluster, gpus: int, gpus_per_node: int | None, accepted_models: frozenset[str]
) -> PendingReason | None:
    if any(_fits_pool(cluster, p, gpus, gpus_per_node) for p in accepted_pools(cluster, accepted_models)):
        return None
    shape = f"{gpus} GPU(s)" + (f" as {gpus_per_node} per node" if gpus_per_node else "")
    return PendingReason("never-fits", f"no accepted pool can ever hold {shape}")
