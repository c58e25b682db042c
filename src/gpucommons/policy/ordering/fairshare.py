"""Slurm-style multifactor priority with classic fair share.

priority = w_fs * 2^(-U/S) + w_age * min(1, wait / max_age) + w_size * gpus / cluster_gpus

U is the tenant's share of all decayed usage (the engine decays usage with a half-life, as Slurm's
``PriorityDecayHalfLife``), S its share of the total shares (its guaranteed quota if it has one, else
equal shares). A tenant that used exactly its share gets 0.5; one that used nothing gets 1.0.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
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
            return heapq.merge(*queues.values(), key=key)
        return sorted(snapshot.pending, key=key)
