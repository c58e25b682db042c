"""First fit: the lowest-numbered node (and GPU) that can hold the job.

The simplest baseline: a scan in node order, no index, no score. Gangs use the shared ``fit.gang``.
"""

from __future__ import annotations

from gpucommons.domain.job import Job, Placement
from gpucommons.policy.capacity import MILLI, Capacity
from gpucommons.policy.placement.fit import gang, pool_start, usable_pools


class FirstFitPlacer:
    def place(self, job: Job, capacity: Capacity) -> Placement | None:
        usable = usable_pools(job, capacity.cluster)
        if job.shared or job.gpus_per_node in (None, job.gpus):
            for pool, eff in usable:
                start = pool_start(capacity.cluster)[pool]
                for node in range(start, start + capacity.cluster.pools[pool].node_count):
                    placement = _try_node(capacity, job, node, eff)
                    if placement is not None:
                        return placement
            if job.shared or job.gpus_per_node is not None:
                return None
        return gang(capacity, job, tuple(p for p, _ in usable)) if job.gpus > 0 else None


def _try_node(capacity: Capacity, job: Job, node: int, eff: int) -> Placement | None:
    if not capacity.fits_host(node, job.cpu_milli, job.memory_mib):
        return None
    if job.shared:
        for gpu in range(capacity.gpus_of[node]):
            if capacity.gpu_free_milli(node, gpu) >= eff:
                capacity.allocate_share(node, gpu, eff, job.cpu_milli, job.memory_mib)
                return Placement(
                    ((node, (gpu,)),), milli=eff, cpu_milli=job.cpu_milli, memory_mib=job.memory_mib
                )
        return None
    if capacity.free_gpus(node) < job.gpus or (job.gpus == 0 and not (job.cpu_milli or job.memory_mib)):
        return None
    gpus = capacity.allocate(node, job.gpus, job.cpu_milli, job.memory_mib)
    assert eff == MILLI
    return Placement(((node, gpus),), cpu_milli=job.cpu_milli, memory_mib=job.memory_mib)
