"""The ``residency`` stage: jobs of sovereign tenants are marked sovereign, so placement offers them
only pools at sovereign sites (``shapes.accepted_pools``). Residency is a filter on where a job may be
placed, never a check after the fact; a job marked sovereign by its submitter is filtered the same way
without this stage."""

from __future__ import annotations

from dataclasses import dataclass, replace

from gpucommons.policy.protocols import AdmitOnly, Admitted, Verdict
from gpucommons.policy.snapshot import PendingJob, Snapshot


@dataclass(frozen=True)
class ResidencyGate(AdmitOnly):
    sovereign_tenants: frozenset[str]

    def admit(self, pending: PendingJob, admitted: Admitted | None) -> Verdict:
        job = pending.job if admitted is None else admitted.job
        if job.sovereign or job.tenant not in self.sovereign_tenants:
            return admitted
        return Admitted(replace(job, sovereign=True), admitted is not None and admitted.borrowing)


@dataclass(frozen=True)
class ResidencyStage:
    name: str = "residency"

    def open(self, snapshot: Snapshot, now: float) -> ResidencyGate | None:
        return ResidencyGate(snapshot.sovereign_tenants) if snapshot.sovereign_tenants else None
