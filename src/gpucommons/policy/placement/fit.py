"""What every placer must respect, shared so no placer can get it wrong on its own.

- Shares: a job with ``gpu_milli < 1000`` takes part of one accelerator. A GPU model accepts any share;
  an NPU with ``partitions`` (RNGD: 2, 4, 8 virtual NPUs) rounds the share up to the smallest slice that
  holds it; an NPU without partitions cannot be shared (``share_milli`` returns ``None``).
- Host resources: ``cpu_milli`` / ``memory_mib`` must be free on every node used.
- Topology groups: a multi-node job counts "one group" as one NVLink domain in pools whose
  ``nvlink_domain_nodes > 1`` (e.g. GB200 NVL72: 18 nodes), else one network block (``Node.block``).
  ``topology="required"`` jobs never span groups; ``"preferred"`` ones try one group, then the fewest.
"""

from __future__ import annotations

from functools import lru_cache

from gpucommons.domain.accelerators import AcceleratorModel
from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job, Placement
from gpucommons.policy.capacity import MILLI, Capacity
from gpucommons.policy.placement.shapes import job_pools

REQUIRED = "required"


def share_milli(model: AcceleratorModel, milli: int) -> int | None:
    """The share a ``milli`` request really occupies on ``model``, or ``None`` if it cannot be shared."""
    if model.kind != "npu":
        return milli
    slices = sorted(MILLI // p for p in model.partitions)
    return next((s for s in slices if s >= milli), None)


def is_plain(job: Job) -> bool:
    """Whole GPUs, no CPU/memory request, no hard topology: the replay path's classic job."""
    return job.gpu_milli == MILLI and not job.cpu_milli and not job.memory_mib and job.topology != REQUIRED


@lru_cache(maxsize=256)
def pool_start(cluster: Cluster) -> tuple[int, ...]:
    """Index of each pool's first node (pools expand into contiguous node ranges)."""
    starts: list[int] = []
    at = 0
    for pool in cluster.pools:
        starts.append(at)
        at += pool.node_count
    return tuple(starts)


@lru_cache(maxsize=256)
def group_of(cluster: Cluster) -> tuple[int, ...]:
    """Topology group id per node (NVLink domain or network block, see the module docstring)."""
    out: list[int] = []
    for pool in cluster.pools:
        domain = pool.topology.nvlink_domain_nodes
        size = domain if domain > 1 else (pool.topology.block_nodes or pool.node_count or 1)
        out.extend(i // size for i in range(pool.node_count))
    return tuple(out)


@lru_cache(maxsize=256)
def single_group(cluster: Cluster, pool: int) -> bool:
    """True when ``pool`` is one topology group (no block or domain structure to respect)."""
    p = cluster.pools[pool]
    domain = p.topology.nvlink_domain_nodes
    size = domain if domain > 1 else (p.topology.block_nodes or p.node_count)
    return size >= p.node_count


@lru_cache(maxsize=4096)
def flat_topology(cluster: Cluster, pools: tuple[int, ...]) -> bool:
    """True when none of ``pools`` has block or NVLink-domain structure (one cached lookup per call)."""
    return all(single_group(cluster, p) for p in pools)


def usable_pools(job: Job, cluster: Cluster) -> tuple[tuple[int, int], ...]:
    """``(pool, share milli)`` for pools the job accepts; the share is 1000 for whole-GPU jobs."""
    out: list[tuple[int, int]] = []
    for pool in job_pools(cluster, job):
        if job.shared:
            eff = share_milli(cluster.pools[pool].model, job.gpu_milli)
            if eff is not None:
                out.append((pool, eff))
        else:
            out.append((pool, MILLI))
    return tuple(out)


def gang(capacity: Capacity, job: Job, pools: tuple[int, ...]) -> Placement | None:
    """A multi-node whole-GPU job in one pool, honouring host requests and topology groups.

    Scans the pool's nodes (gangs are rare next to single-node starts). Within each group it fills the
    largest free nodes first; it prefers the group needing the fewest nodes, ties to the tightest group.
    """
    cluster = capacity.cluster
    groups = group_of(cluster)
    per_node = job.gpus_per_node
    best: tuple[tuple[int, int, int], list[tuple[int, int]]] | None = None
    for pool in pools:
        start = pool_start(cluster)[pool]
        by_group: dict[int, list[tuple[int, int]]] = {}
        for node in range(start, start + cluster.pools[pool].node_count):
            free = capacity.free_gpus(node)
            if (
                free
                and (per_node is None or free >= per_node)
                and capacity.fits_host(node, job.cpu_milli, job.memory_mib)
            ):
                by_group.setdefault(groups[node], []).append((free, node))
        for members in by_group.values():
            picked = _fill(members, job.gpus, per_node)
            if picked is not None:
                rank = (len(picked), sum(f for f, _ in members), pool)
                if best is None or rank < best[0]:
                    best = (rank, picked)
        if best is None and job.topology != REQUIRED:
            spread = sorted(by_group.values(), key=lambda m: -sum(f for f, _ in m))
            picked = _fill([x for m in spread for x in m], job.gpus, per_node, keep_order=True)
            if picked is not None:
                best = ((len(picked), 0, pool), picked)
                break
    if best is None:
        return None
    chosen = tuple(
        (node, capacity.allocate(node, take, job.cpu_milli, job.memory_mib)) for node, take in best[1]
    )
    return Placement(chosen, cpu_milli=job.cpu_milli, memory_mib=job.memory_mib)


def _fill(
    members: list[tuple[int, int]], gpus: int, per_node: int | None, keep_order: bool = False
) -> list[tuple[int, int]] | None:
    """``(node, GPUs to take)``: fixed shape takes ``per_node`` each from the tightest nodes; a free
    shape takes the largest nodes first (group order kept when ``keep_order``)."""
    if per_node is not None:
        need = gpus // per_node
        ordered = sorted(members) if not keep_order else members
        if len(ordered) < need:
            return None
        return [(node, per_node) for _, node in ordered[:need]]
    ordered = members if keep_order else sorted(members, key=lambda m: (-m[0], m[1]))
    out, remaining = [], gpus
    for free, node in ordered:
        if remaining <= 0:
            break
        take = min(free, remaining)
        out.append((node, take))
        remaining -= take
    return out if remaining <= 0 else None
