"""Shape helpers shared by placers: which pools a job may use, and whether it can ever fit."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.policy.decisions import PendingReason


@lru_cache(maxsize=4096)
def accepted_pools(
    cluster: Cluster,
    accepted_models: frozenset[str],
    accepted_sites: frozenset[str] = frozenset(),
    sovereign: bool = False,
) -> tuple[int, ...]:
    """Indices of the pools whose model and site the job accepts (empty sets accept any), leaving out
    non-sovereign sites for a sovereign job: residency is a placement filter, not a post-check."""
    sites = cluster.site_by_name
    return tuple(
        i
        for i, p in enumerate(cluster.pools)
        if (not accepted_models or p.model.name in accepted_models)
        and (not accepted_sites or p.site in accepted_sites)
        and (not sovereign or sites[p.site].sovereign)
    )


def job_pools(cluster: Cluster, job: Job) -> tuple[int, ...]:
    """The pools ``job`` may be placed in (``accepted_pools`` for its models, sites and residency)."""
    return accepted_pools(cluster, job.accepted_models, job.accepted_sites, job.sovereign)


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
    largest = max((cluster.pools[p].gpus_per_node for p in job_pools(cluster, job)), default=0)
    per_node = next((d for d in range(min(job.gpus, largest), 0, -1) if job.gpus % d == 0), job.gpus)
    return replace(job, gpus_per_node=per_node)


def never_fits_reason(job: Job, cluster: Cluster) -> PendingReason | None:
    """A reason when no accepted pool could hold the job even if it were empty; else ``None``."""
    if job.sovereign or job.accepted_sites:
        return _never_fits(
            cluster, job.gpus, job.gpus_per_node, job.accepted_models, job.accepted_sites, job.sovereign
        )
    return _never_fits_anywhere(cluster, job.gpus, job.gpus_per_node, job.accepted_models)


@lru_cache(maxsize=65536)
def _never_fits_anywhere(
    cluster: Cluster, gpus: int, gpus_per_node: int | None, accepted_models: frozenset[str]
) -> PendingReason | None:
    """``_never_fits`` for a job with no site filter (most jobs: a smaller cache key, hashed per job
    of every cycle)."""
    return _never_fits(cluster, gpus, gpus_per_node, accepted_models, frozenset(), False)


@lru_cache(maxsize=65536)
def _never_fits(
    cluster: Cluster,
    gpus: int,
    gpus_per_node: int | None,
    accepted_models: frozenset[str],
    accepted_sites: frozenset[str],
    sovereign: bool,
) -> PendingReason | None:
    pools = accepted_pools(cluster, accepted_models, accepted_sites, sovereign)
    if any(_fits_pool(cluster, p, gpus, gpus_per_node) for p in pools):
        return None
    if sovereign and not any(s.sovereign for s in cluster.sites):
        return PendingReason("residency", "the job must stay on sovereign sites and the cluster has none")
    shape = f"{gpus} GPU(s)" + (f" as {gpus_per_node} per node" if gpus_per_node else "")
    return PendingReason("never-fits", f"no accepted pool can ever hold {shape}")
