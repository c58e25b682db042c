"""Best-fit gang placement: the tightest node that fits, else the fewest nodes of one pool.

Single-node jobs go to the node whose free GPUs exceed the request least (across accepted pools),
which keeps whole nodes free for large jobs. Multi-node gangs stay inside one pool (identical nodes, one
fabric) and take the fewest nodes: largest free nodes first, then the tightest node for the remainder.
Everything is all-or-nothing: a partial gang is rolled back.

Jobs that need more than whole GPUs (a share, CPU/memory beside the GPUs, or a required topology) and
gangs in pools with block or NVLink-domain structure take the state-scored path (``scored.py``,
``fit.gang``): shares go to the GPU they fill most exactly, then to the node left with the least free
GPU milli. Classic whole-GPU jobs keep the bucket path above, so replays of whole-GPU traces are
unchanged.
"""

from __future__ import annotations

from gpucommons.domain.job import Job, Placement
from gpucommons.policy.capacity import Capacity, StateKey
from gpucommons.policy.placement.fit import flat_topology, is_plain
from gpucommons.policy.placement.scored import Score, ScoredPlacer
from gpucommons.policy.placement.shapes import job_pools


class BestFitPlacer(ScoredPlacer):
    def score(self, key: StateKey, job: Job, eff: int, option: int) -> Score:
        """Least leftover on the chosen GPU, then least free GPU milli and CPU left on the node."""
        node_free = sum(key[3]) - (eff if job.shared else 1000 * job.gpus)
        return (float(option - eff), float(node_free), float(key[1] - job.cpu_milli))

    def place(self, job: Job, capacity: Capacity) -> Placement | None:
        pools = job_pools(capacity.cluster, job)
        if not is_plain(job) or not flat_topology(capacity.cluster, pools):
            return super().place(job, capacity)
        if capacity.free_total < job.gpus or not pools:
            return None
        per_node = job.gpus_per_node
        if per_node is None or per_node == job.gpus:
            node = _tightest(capacity, pools, job.gpus)
            if node is not None:
                return Placement(((node, capacity.allocate(node, job.gpus)),))
            if per_node is not None:
                return None
            return _fewest_nodes(capacity, pools, job.gpus)
        return _fixed_shape(capacity, pools, job.gpus // per_node, per_node)


def _tightest(capacity: Capacity, pools: tuple[int, ...], gpus: int, only: int | None = None) -> int | None:
    """The node with the fewest free GPUs that still holds ``gpus``; ties go to the earlier pool."""
    best_k = None
    best_node = None
    for pool in pools if only is None else (only,):
        size = capacity.cluster.pools[pool].gpus_per_node
        for k in range(gpus, size + 1):
            if best_k is not None and k >= best_k:
                break
            bucket = capacity.nodes_with_free(pool, k)
            if bucket:
                best_k, best_node = k, bucket[-1]
                break
    return best_node


def _fewest_nodes(capacity: Capacity, pools: tuple[int, ...], gpus: int) -> Placement | None:
    best: tuple[int, int] | None = None  # (nodes needed, pool)
    for pool in pools:
        needed = _nodes_needed(capacity, pool, gpus)
        if needed is not None and (best is None or needed < best[0]):
            best = (needed, pool)
    if best is None:
        return None
    pool = best[1]
    chosen: list[tuple[int, tuple[int, ...]]] = []
    remaining = gpus
    size = capacity.cluster.pools[pool].gpus_per_node
    while remaining > 0:
        node = _tightest(capacity, pools, remaining, only=pool)
        if node is None:
            node = next(
                capacity.nodes_with_free(pool, k)[-1]
                for k in range(size, 0, -1)
                if capacity.nodes_with_free(pool, k)
            )
        take = min(remaining, capacity.free_gpus(node))
        chosen.append((node, capacity.allocate(node, take)))
        remaining -= take
    return Placement(tuple(chosen))


def _nodes_needed(capacity: Capacity, pool: int, gpus: int) -> int | None:
    """How many nodes of ``pool`` a largest-first fill needs, or ``None`` if the pool lacks the GPUs."""
    size = capacity.cluster.pools[pool].gpus_per_node
    remaining = gpus
    nodes = 0
    for k in range(size, 0, -1):
        count = len(capacity.nodes_with_free(pool, k))
        if count == 0:
            continue
        use = min(count, -(-remaining // k))
        nodes += use
        remaining -= use * k
        if remaining <= 0:
            return nodes
    return None


def _fixed_shape(
    capacity: Capacity, pools: tuple[int, ...], node_count: int, per_node: int
) -> Placement | None:
    """``node_count`` nodes with ``per_node`` GPUs each, in one pool, tightest nodes first."""
    for pool in pools:
        size = capacity.cluster.pools[pool].gpus_per_node
        if per_node > size:
            continue
        picked: list[int] = []
        for k in range(per_node, size + 1):
            bucket = capacity.nodes_with_free(pool, k)
            picked.extend(bucket[-(node_count - len(picked)) :] if len(bucket) else [])
            if len(picked) >= node_count:
                break
        if len(picked) >= node_count:
            return Placement(tuple((n, capacity.allocate(n, per_node)) for n in picked[:node_count]))
    return None
