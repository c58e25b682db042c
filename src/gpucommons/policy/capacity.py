"""Free accelerators per node, indexed for best-fit, with an undo log for what-ifs.

The policy core must not change the state it was given, yet it needs to try allocations as it walks the
queue (Kueue's "assume", SimulateWorkloadRemoval). ``Capacity.what_if()`` opens an undo log: every
allocate/release inside it is reverted when the block ends, so ``schedule()`` leaves its snapshot exactly
as it found it. The engine applies the decisions afterwards, outside any what-if.

Per node we keep a bitmask of free GPU indices (so placements name concrete devices, which the live
backends need for ``CUDA_VISIBLE_DEVICES``) and, per pool, buckets of nodes by free-GPU count with O(1)
moves between buckets: best fit is "the smallest non-empty bucket that is large enough", never a scan of
every node.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from gpucommons.domain.cluster import Cluster


def _bits(mask: int) -> tuple[int, ...]:
    out = []
    i = 0
    while mask:
        if mask & 1:
            out.append(i)
        mask >>= 1
        i += 1
    return tuple(out)


class Capacity:
    """Mutable free-GPU state of a cluster; see the module docstring for the what-if contract."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        pool_index = {p.name: i for i, p in enumerate(cluster.pools)}
        self.pool_of: list[int] = [pool_index[n.pool] for n in cluster.nodes]
        self.gpus_of: list[int] = [n.gpus for n in cluster.nodes]
        self._mask: list[int] = [(1 << n.gpus) - 1 for n in cluster.nodes]
        self._free: list[int] = [n.gpus for n in cluster.nodes]
        self._up: list[bool] = [True] * len(cluster.nodes)
        self._buckets: list[list[list[int]]] = [[[] for _ in range(p.gpus_per_node + 1)] for p in cluster.pools]
        self._pos: list[int] = [0] * len(cluster.nodes)
        for node in cluster.nodes:
            self._bucket_add(node.index)
        self.free_total = cluster.total_gpus
        self._undo: list[tuple[int, int, bool]] | None = None

    # -- index -----------------------------------------------------------------------------------
    def _bucket_add(self, node: int) -> None:
        bucket = self._buckets[self.pool_of[node]][self._free[node]]
        self._pos[node] = len(bucket)
        bucket.append(node)

    def _bucket_remove(self, node: int) -> None:
        bucket = self._buckets[self.pool_of[node]][self._free[node]]
        pos = self._pos[node]
        last = bucket.pop()
        if last != node:
            bucket[pos] = last
            self._pos[last] = pos

    def _set_mask(self, node: int, mask: int, up: bool) -> None:
        if self._undo is not None:
            self._undo.append((node, self._mask[node], self._up[node]))
        if self._up[node]:
            self._bucket_remove(node)
            self.free_total -= self._free[node]
        self._mask[node] = mask
        self._free[node] = mask.bit_count()
        self._up[node] = up
        if up:
            self._bucket_add(node)
            self.free_total += self._free[node]

    # -- queries ---------------------------------------------------------------------------------
    def free_gpus(self, node: int) -> int:
        return self._free[node] if self._up[node] else 0

    def free_indices(self, node: int) -> tuple[int, ...]:
        return _bits(self._mask[node]) if self._up[node] else ()

    def is_up(self, node: int) -> bool:
        return self._up[node]

    def nodes_with_free(self, pool: int, count: int) -> Sequence[int]:
        """Up nodes of ``pool`` with exactly ``count`` free GPUs (a live view: copy before mutating)."""
        return self._buckets[pool][count]

    # -- changes ---------------------------------------------------------------------------------
    def allocate(self, node: int, count: int) -> tuple[int, ...]:
        """Take the ``count`` lowest free GPU indices of ``node``; returns them."""
        mask = self._mask[node]
        taken = _bits(mask)[:count]
        if len(taken) < count or not self._up[node]:
            raise ValueError(f"node {node} has {self.free_gpus(node)} free GPUs, asked for {count}")
        for i in taken:
            mask &= ~(1 << i)
        self._set_mask(node, mask, True)
        return taken

    def allocate_indices(self, node: int, indices: Sequence[int]) -> None:
        """Take exactly these GPU indices (used when adopting jobs that already run)."""
        mask = self._mask[node]
        for i in indices:
            if not mask >> i & 1:
                raise ValueError(f"GPU {i} of node {node} is not free")
            mask &= ~(1 << i)
        self._set_mask(node, mask, self._up[node])

    def release(self, node: int, indices: Sequence[int]) -> None:
        mask = self._mask[node]
        for i in indices:
            mask |= 1 << i
        self._set_mask(node, mask, self._up[node])

    def set_up(self, node: int, up: bool) -> None:
        """Mark a node usable or not (drained, down); a down node offers no GPUs."""
        if self._up[node] != up:
            self._set_mask(node, self._mask[node], up)

    @contextmanager
    def what_if(self) -> Iterator[Capacity]:
        """Every change inside the block is undone when it ends (nesting is allowed)."""
        outer = self._undo
        self._undo = []
        try:
            yield self
        finally:
            log, self._undo = self._undo, None
            for node, mask, up in reversed(log):
                self._set_mask(node, mask, up)
            self._undo = outer

    def mark(self) -> int:
        """A point in the current what-if to roll back to (for trial preemptions)."""
        if self._undo is None:
            raise RuntimeError("mark() outside what_if()")
        return len(self._undo)

    def rollback(self, mark: int) -> None:
        if self._undo is None:
            raise RuntimeError("rollback() outside what_if()")
        log = self._undo
        self._undo = None
        while len(log) > mark:
            node, mask, up = log.pop()
            self._set_mask(node, mask, up)
        self._undo = log
