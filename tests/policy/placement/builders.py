"""Builders for placement tests: small clusters and jobs with readable defaults."""

from __future__ import annotations

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.cluster import Cluster, Pool, Site, Topology
from gpucommons.domain.job import Job


def make_cluster(
    *pools: tuple[str, str, int, int], block_nodes: int = 0, nvlink_domain_nodes: int = 1
) -> Cluster:
    """``(name, model, nodes, gpus_per_node)`` pools with 32 cores and 256 GiB per node."""
    topology = Topology(nvlink_domain_nodes=nvlink_domain_nodes, block_nodes=block_nodes)
    built = tuple(
        Pool(
            name=n,
            site="s",
            model=CATALOG[m],
            node_count=c,
            gpus_per_node=g,
            cpus_per_node=32,
            memory_gib_per_node=256,
            topology=topology,
        )
        for n, m, c, g in pools
    )
    return Cluster.build("test", (Site("s"),), built)


def make_job(job_id: int = 1, gpus: int = 1, **kw: object) -> Job:
    return Job(id=job_id, tenant="t", gpus=gpus, submit_s=0.0, duration_s=10.0, estimate_s=10.0, **kw)  # type: ignore[arg-type]
