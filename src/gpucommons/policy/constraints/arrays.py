"""The ``array-limit`` stage: a job array submitted with ``%N`` never has more than N tasks running
(design note 0011).

The snapshot names the limited arrays (``Snapshot.array_limits``) and each task its array
(``Job.array_id``). When the cycle opens, the gate counts each limited array's running tasks; it
refuses a task while its array is at the limit and counts every start it lets through. A task
preempted during the cycle keeps its slot until the next one: its process may still be stopping while
this cycle's starts are launched, and the limit must hold at every instant, not only in the records.
A refusal is about the job, not the room left, so it counts toward no scan limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gpucommons.policy.decisions import PendingReason, Start
from gpucommons.policy.protocols import AdmitOnly, Admitted, Verdict
from gpucommons.policy.snapshot import PendingJob, Snapshot

CODE = "array-limit"


@dataclass
class ArrayLimitGate(AdmitOnly):
    limits: Mapping[int, int]  # array id -> the most tasks that may run at once
    running: dict[int, int] = field(default_factory=dict)  # array id -> tasks running or started now

    def admit(self, pending: PendingJob, admitted: Admitted | None) -> Verdict:
        array = pending.job.array_id
        if array is None or array not in self.limits:
            return admitted
        limit, running = self.limits[array], self.running.get(array, 0)
        if running < limit:
            return admitted
        return PendingReason(
            CODE,
            f"array {array} has {running} of at most {limit} tasks running",
            figures=(("running", float(running)), ("limit", float(limit))),
        )

    def started(self, start: Start) -> Start:
        array = start.job.array_id
        if array is not None and array in self.limits:
            self.running[array] = self.running.get(array, 0) + 1
        return start


@dataclass(frozen=True)
class ArrayLimitStage:
    name: str = CODE

    def open(self, snapshot: Snapshot, now: float) -> ArrayLimitGate | None:
        limits = snapshot.array_limits
        if not limits:
            return None
        running: dict[int, int] = {}
        for r in snapshot.running.values():
            array = r.job.array_id
            if array is not None and array in limits:
                running[array] = running.get(array, 0) + 1
        return ArrayLimitGate(limits, running)
