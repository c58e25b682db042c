"""Free accelerators, CPU and memory per node, indexed for placement, with an undo log for what-ifs.

The policy core must not change the state it was given, yet it needs to try allocations as it walks the
queue (Kueue's "assume", SimulateWorkloadRemoval). ``Capacity.what_if()`` opens an undo log: every
allocate/release inside it is reverted when the block ends, so ``schedule()`` leaves its snapshot exactly
as it found it. The engine applies the decisions afterwards, outside any what-if.

Per node we keep a bitmask of *wholly* free GPU indices (so placements name concrete devices, which the
live backends need for ``CUDA_VISIBLE_DEVICES``) and, per pool, buckets of nodes by whole-free-GPU count
with O(1) moves between buckets: best fit is "the smallest non-empty bucket that is large enough", never a
scan of every node. A GPU that holds a share (``gpu_milli < 1000``) leaves the whole-GPU mask, so a
whole-GPU job can never land on it; its used milli lives in ``_share``. Free CPU (milli-cores) and memory
(MiB) are kept per node. Placers that score node *states* (fragmentation-aware ones) can ask for
``classes()``: nodes grouped by identical state, maintained incrementally once asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Placement

MILLI = 1000
StateKey = tuple[
    int, int, int, tuple[int, ...]
]  # pool, free CPU milli, free memory MiB, sorted GPU free milli


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
    """Mutable free-resource state of a cluster; see the module docstring for the what-if contract."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        pool_index = {p.name: i for i, p in enumerate(cluster.pools)}
        self.pool_of: list[int] = [pool_index[n.pool] for n in cluster.nodes]
        self.gpus_of: list[int] = [n.gpus for n in cluster.nodes]
        self._mask: list[int] = [(1 << n.gpus) - 1 for n in cluster.nodes]
        self._free: list[int] = [n.gpus for n in cluster.nodes]
        self._up: list[bool] = [True] * len(cluster.nodes)
        self._buckets: list[list[list[int]]] = [
            [[] for _ in range(p.gpus_per_node + 1)] for p in cluster.pools
        ]
        self._pos: list[int] = [0] * len(cluster.nodes)
        for node in cluster.nodes:
            self._bucket_add(node.index)
        self.free_total = cluster.total_gpus
        self._cpu: list[int] = [n.cpus * MILLI for n in cluster.nodes]
        self._mem: list[int] = [n.memory_gib * 1024 for n in cluster.nodes]
        self._share: list[tuple[int, ...] | None] = [None] * len(cluster.nodes)  # used milli per GPU
        self.partial_free_milli = 0  # free milli on GPUs that hold shares
        self._undo: list[tuple[int, int, bool] | tuple[int, int, int, tuple[int, ...] | None]] | None = None
        self._classes: dict[StateKey, dict[int, None]] | None = None
        self._class_of: list[StateKey | None] = []

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
        if self._classes is not None:
            self._reclass(node)

    def _set_host(self, node: int, cpu: int, mem: int, share: tuple[int, ...] | None) -> None:
        """Change free CPU, memory and GPU shares of ``node`` (logged for undo like ``_set_mask``)."""
        if self._undo is not None:
            self._undo.append((node, self._cpu[node], self._mem[node], self._share[node]))
        old = self._share[node]
        if old is not None:
            self.partial_free_milli -= sum(MILLI - u for u in old if u)
        if share is not None:
            self.partial_free_milli += sum(MILLI - u for u in share if u)
            if not any(share):
                share = None
        self._cpu[node], self._mem[node], self._share[node] = cpu, mem, share
        if self._classes is not None:
            self._reclass(node)

    def _restore(self, entry: tuple[int, int, bool] | tuple[int, int, int, tuple[int, ...] | None]) -> None:
        if len(entry) == 3:
            self._set_mask(entry[0], entry[1], entry[2])
        else:
            self._set_host(entry[0], entry[1], entry[2], entry[3])

    # -- node classes (for placers that score node states) ---------------------------------------
    def state_key(self, node: int) -> StateKey:
        """Everything a state-scoring placer can see of a node: two nodes with the same key score alike."""
        return (
            self.pool_of[node],
            self._cpu[node],
            self._mem[node],
            tuple(sorted(self.gpu_free_milli(node, g) for g in range(self.gpus_of[node]))),
        )

    def _reclass(self, node: int) -> None:
        assert self._classes is not None
        old = self._class_of[node]
        if old is not None:
            members = self._classes[old]
            del members[node]
            if not members:
                del self._classes[old]
        key = self.state_key(node) if self._up[node] else None
        self._class_of[node] = key
        if key is not None:
            self._classes.setdefault(key, {})[node] = None

    def classes(self) -> dict[StateKey, dict[int, None]]:
        """Up nodes grouped by ``state_key`` (insertion-ordered); built on first use, then kept current."""
        if self._classes is None:
            self._classes = {}
            self._class_of = [None] * len(self._mask)
            for node in range(len(self._mask)):
                self._reclass(node)
        return self._classes

    # -- queries ---------------------------------------------------------------------------------
    def free_gpus(self, node: int) -> int:
        """Wholly free GPUs of ``node`` (GPUs holding shares are not counted)."""
        return self._free[node] if self._up[node] else 0

    def is_up(self, node: int) -> bool:
        """Whether ``node`` offers anything (not drained, down or hidden by a fence)."""
        return self._up[node]

    def up_flags(self) -> Sequence[bool]:
        """``is_up`` of every node, in node order (a live view: read it, do not keep it)."""
        return self._up

    def free_indices(self, node: int) -> tuple[int, ...]:
        return _bits(self._mask[node]) if self._up[node] else ()

    def nodes_with_free(self, pool: int, count: int) -> Sequence[int]:
        """Up nodes of ``pool`` with exactly ``count`` free GPUs (a live view: copy before mutating)."""
        return self._buckets[pool][count]

    def gpu_free_milli(self, node: int, gpu: int) -> int:
        """Free share of one GPU: 1000 when wholly free, 0 when held whole or the node is down."""
        if not self._up[node]:
            return 0
        if self._mask[node] >> gpu & 1:
            return MILLI
        share = self._share[node]
        return MILLI - share[gpu] if share is not None and share[gpu] else 0

    def cpu_free_milli(self, node: int) -> int:
        return self._cpu[node]

    def memory_free_mib(self, node: int) -> int:
        return self._mem[node]

    def fits_host(self, node: int, cpu_milli: int, memory_mib: int) -> bool:
        """Whether ``node`` is up and has the CPU and memory a job needs beside its GPUs."""
        return self._up[node] and self._cpu[node] >= cpu_milli and self._mem[node] >= memory_mib

    @property
    def allocated_milli(self) -> int:
        """GPU milli in use across the cluster, counting shares (down nodes count as free here)."""
        whole_busy = self.cluster.total_gpus - self.free_total
        return whole_busy * MILLI - self.partial_free_milli

    # -- changes ---------------------------------------------------------------------------------
    def allocate(self, node: int, count: int, cpu_milli: int = 0, memory_mib: int = 0) -> tuple[int, ...]:
        """Take the ``count`` lowest free GPU indices of ``node`` (and CPU/memory); returns them."""
        mask = self._mask[node]
        taken = _bits(mask)[:count]
        if len(taken) < count or not self._up[node]:
            raise ValueError(f"node {node} has {self.free_gpus(node)} free GPUs, asked for {count}")
        for i in taken:
            mask &= ~(1 << i)
        self._take_host(node, cpu_milli, memory_mib)
        self._set_mask(node, mask, True)
        return taken

    def allocate_share(
        self, node: int, gpu: int, milli: int, cpu_milli: int = 0, memory_mib: int = 0
    ) -> None:
        """Take ``milli`` of GPU ``gpu`` (wholly free or already shared) plus CPU/memory on ``node``."""
        if not 0 < milli < MILLI or self.gpu_free_milli(node, gpu) < milli:
            raise ValueError(f"GPU {gpu} of node {node} has no room for a {milli}-milli share")
        mask = self._mask[node]
        share = list(self._share[node] or (0,) * self.gpus_of[node])
        share[gpu] += milli
        self._take_host(node, cpu_milli, memory_mib, tuple(share))
        if mask >> gpu & 1:
            self._set_mask(node, mask & ~(1 << gpu), self._up[node])

    def _take_host(
        self, node: int, cpu_milli: int, memory_mib: int, share: tuple[int, ...] | None = None
    ) -> None:
        if cpu_milli or memory_mib or share is not None:
            if self._cpu[node] < cpu_milli or self._mem[node] < memory_mib:
                raise ValueError(f"node {node} lacks CPU or memory for the request")
            new_share = self._share[node] if share is None else share
            self._set_host(node, self._cpu[node] - cpu_milli, self._mem[node] - memory_mib, new_share)

    def allocate_indices(
        self, node: int, indices: Sequence[int], milli: int = MILLI, cpu_milli: int = 0, memory_mib: int = 0
    ) -> None:
        """Take exactly these GPU indices (used when adopting jobs that already run, or recording starts)."""
        if milli < MILLI:
            for i in indices:
                self.allocate_share(node, i, milli, cpu_milli, memory_mib)
            return
        mask = self._mask[node]
        for i in indices:
            if not mask >> i & 1:
                raise ValueError(f"GPU {i} of node {node} is not free")
            mask &= ~(1 << i)
        self._take_host(node, cpu_milli, memory_mib)
        self._set_mask(node, mask, self._up[node])

    def release(
        self, node: int, indices: Sequence[int], milli: int = MILLI, cpu_milli: int = 0, memory_mib: int = 0
    ) -> None:
        """Give back GPUs (or shares of them, ``milli < 1000``) and CPU/memory taken on ``node``."""
        mask = self._mask[node]
        share = self._share[node]
        if milli < MILLI:
            used = list(share or (0,) * self.gpus_of[node])
            for i in indices:
                used[i] -= milli
                if used[i] == 0:
                    mask |= 1 << i
            share = tuple(used)
        else:
            for i in indices:
                mask |= 1 << i
        if cpu_milli or memory_mib or milli < MILLI:
            self._set_host(node, self._cpu[node] + cpu_milli, self._mem[node] + memory_mib, share)
        if mask != self._mask[node]:
            self._set_mask(node, mask, self._up[node])

    def take(self, placement: Placement) -> None:
        """Allocate exactly what ``placement`` names (the store records starts this way)."""
        for node, gpus in placement.node_gpus:
            self.allocate_indices(node, gpus, placement.milli, placement.cpu_milli, placement.memory_mib)

    def give(self, placement: Placement) -> None:
        """Release everything ``placement`` holds."""
        for node, gpus in placement.node_gpus:
            self.release(node, gpus, placement.milli, placement.cpu_milli, placement.memory_mib)

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
            for entry in reversed(log):
                self._restore(entry)
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
            self._restore(log.pop())
        self._undo = log
