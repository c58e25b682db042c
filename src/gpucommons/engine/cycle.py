"""One engine cycle: snapshot, decide, record, act (Kueue's "snapshot, decide, assume, apply")."""

from __future__ import annotations

from gpucommons.engine.ports import Executor, StateStore
from gpucommons.policy.cycle import schedule
from gpucommons.policy.decisions import CycleResult
from gpucommons.policy.protocols import PolicyConfig, WorkloadAware


def run_cycle(
    store: StateStore, executor: Executor, config: PolicyConfig, now: float, *, mix_from_queue: bool = False
) -> CycleResult:
    """Record first, then act: a crash between the two leaves durable intent the executor can redo,
    never a process the store does not know about. ``mix_from_queue``: a placer that scores against a
    request mix (FGD) gets the jobs pending and running now; the replay gives it the trace instead."""
    snapshot = store.snapshot(now)
    if mix_from_queue and isinstance(config.placer, WorkloadAware):
        config.placer.observe_workload(
            [*(p.job for p in snapshot.pending), *(r.job for r in snapshot.running.values())]
        )
    result = schedule(snapshot, config, now)
    store.record(result, now)
    for preemption in result.preemptions:
        executor.preempt(preemption.job_id, now)
    for start in result.starts:
        executor.start(start.job, start.placement, now)
    return result
