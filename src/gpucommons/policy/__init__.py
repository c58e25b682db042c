"""The pure scheduling core: ``schedule(snapshot, config, now) -> CycleResult``.

No I/O, no wall clock, no global random, no logging setup. The simulator and the live engine call the
same ``schedule``; they differ only in where the snapshot comes from and who carries out the decisions.
"""

from gpucommons.policy.cycle import schedule
from gpucommons.policy.decisions import CycleResult, PendingReason, Preemption, Start
from gpucommons.policy.protocols import PolicyConfig
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot

__all__ = [
    "CycleResult",
    "PendingJob",
    "PendingReason",
    "PolicyConfig",
    "Preemption",
    "RunningJob",
    "Snapshot",
    "Start",
    "schedule",
]
