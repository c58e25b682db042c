"""One engine cycle: snapshot, decide, record, act (Kueue's "snapshot, decide, assume, apply")."""

from __future__ import annotations

from gpucommons.engine.ports import Executor, StateStore
from gpucommons.policy.cycle import schedule
from gpucommons.policy.decisions import CycleResult
from gpucommons.policy.protocols import PolicyConfig


def run_cycle(store: StateStore, executor: Executor, config: PolicyConfig, now: float) -> CycleResult:
    """Record first, then act: a crash between the two leaves durable intent the executor can redo,
    never a process the store does not know about."""
    snapshot = store.snapshot(now)
    result = schedule(snapshot, config, now)
    store.record(result, now)
    for preemption in result.preemptions:
        executor.preempt(preemption.job_id, now)
    for start in result.starts:
        executor.start(start.job, start.placement, now)
    return result
