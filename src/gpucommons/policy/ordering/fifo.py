"""First come, first served: submit time, then job id."""

from __future__ import annotations

from collections.abc import Iterable

from gpucommons.policy.snapshot import PendingJob, Snapshot


class FifoOrdering:
    def order(self, snapshot: Snapshot, now: float) -> Iterable[PendingJob]:
        return snapshot.pending  # already in (submit_s, id) order by the Snapshot contract
