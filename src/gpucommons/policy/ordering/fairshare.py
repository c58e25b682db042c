"""Slurm-style multifactor priority with classic fair share.

priority = w_fs * 2^(-U/S) + w_age * min(1, wait / max_age) + w_size * gpus / cluster_gpus

U is the tenant's share of all decayed usage (the engine decays usage with a half-life, as Slurm's
``PriorityDecayHalfLife``), S its share of the total shares (its guaranteed quota if it has one, else
equal shares). A tenant that used exactly its share gets 0.5; one that used nothing gets 1.0.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass

from gpucommons.policy.snapshot import PendingJob, Snapshot


@dataclass(frozen=True)
class MultifactorOrdering:
    weight_fairshare: float = 10_000.0
    weight_age: float = 1_000.0
    weight_size: float = 0.0
    max_age_s: float = 7 * 86_400.0

    def fairshare_factors(self, snapshot: Snapshot, tenants: Iterable[str]) -> dict[str, float]:
        names = set(tenants) | set(snapshot.tenant_usage_gpu_s) | set(snapshot.quota_gpus)
        usage = snapshot.tenant_usage_gpu_s
        total_usage = sum(usage.values())
        shares = {t: float(snapshot.quota_gpus.get(t, 0)) for t in names}
        if sum(shares.values()) <= 0:
            shares = dict.fromkeys(names, 1.0)
        total_shares = sum(shares.values())
        factors = {}
        for t in names:
            share = shares.get(t, 0.0) / total_shares
            used = usage.get(t, 0.0) / total_usage if total_usage > 0 else 0.0
            factors[t] = 2.0 ** (-used / share) if share > 0 else 0.0
        return factors

    def order(self, snapshot: Snapshot, now: float) -> Iterable[PendingJob]:
        """Without a size weight, priority within one tenant falls with submit time, so the order is a
        lazy merge of the tenants' queues: a cycle that stops early never ranks the whole queue."""
        queues = snapshot.tenant_queues()
        factors = self.fairshare_factors(snapshot, queues.keys())
        total_gpus = snapshot.cluster.total_gpus or 1
        w_fs, w_age, w_size, max_age = (
            self.weight_fairshare,
            self.weight_age,
            self.weight_size,
            self.max_age_s,
        )

        def key(p: PendingJob) -> tuple[float, float, int]:
            job = p.job
            age = min(1.0, max(0.0, now - job.submit_s) / max_age)
            prio = w_fs * factors[job.tenant] + w_age * age + w_size * job.gpus / total_gpus
            return (-prio, job.submit_s, job.id)

        if w_size == 0:
            return _merge(queues, factors, now, (w_fs, w_age, w_size, max_age), total_gpus)
        return sorted(snapshot.pending, key=key)


def _merge(
    queues: Mapping[str, Collection[PendingJob]],
    factors: Mapping[str, float],
    now: float,
    weights: tuple[float, float, float, float],
    total_gpus: int,
) -> Iterator[PendingJob]:
    """``heapq.merge`` of the tenants' queues by ``(-priority, submit_s, id)``, yielding the same
    sequence: a queue keeps yielding while its next key is below every other queue's head, so the
    heap is touched once per switch between queues, not once per job."""
    w_fs, w_age, w_size, max_age = weights
    heap: list[tuple[tuple[float, float, int], int, PendingJob, Iterator[PendingJob], float]] = []
    for n, (tenant, queue) in enumerate(queues.items()):
        it = iter(queue)
        first = next(it, None)
        if first is not None:
            job = first.job
            fs = w_fs * factors[tenant]
            age = min(1.0, max(0.0, now - job.submit_s) / max_age)
            prio = fs + w_age * age + w_size * job.gpus / total_gpus
            heap.append(((-prio, job.submit_s, job.id), n, first, it, fs))
    heapq.heapify(heap)
    while heap:
        _, n, p, it, fs = heap[0]
        yield p
        if len(heap) == 1:
            bound = None
        elif len(heap) == 2 or heap[1][0] < heap[2][0]:
            bound = heap[1][0]
        else:
            bound = heap[2][0]
        for p in it:
            job = p.job
            # min(1.0, max(0.0, now - submit_s) / max_age), without the calls
            waited = now - job.submit_s
            age = (waited if waited > 0.0 else 0.0) / max_age
            if age > 1.0:
                age = 1.0
            prio = fs + w_age * age + w_size * job.gpus / total_gpus
            key = (-prio, job.submit_s, job.id)
            if bound is not None and bound < key:
                heapq.heapreplace(heap, (key, n, p, it, fs))
                break
            yield p
        else:
            heapq.heappop(heap)
