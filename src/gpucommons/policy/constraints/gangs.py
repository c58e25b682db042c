"""The ``even-gangs`` stage: for backends whose one job carries a single per-node GPU request (Slurm's
``--gres``), a job must hold the same number of GPUs on every node. The stage fixes each job's gang
shape (``shapes.even_gang``) after the award stage has narrowed its models, so the largest node it may
use is known, and before placement, so every placer sees the shape the backend can run."""

from __future__ import annotations

from dataclasses import dataclass

from gpucommons.domain.cluster import Cluster
from gpucommons.policy.placement.shapes import even_gang
from gpucommons.policy.protocols import AdmitOnly, Admitted, Verdict
from gpucommons.policy.snapshot import PendingJob, Snapshot


@dataclass(frozen=True)
class EvenGangGate(AdmitOnly):
    cluster: Cluster

    def admit(self, pending: PendingJob, admitted: Admitted | None) -> Verdict:
        job = pending.job if admitted is None else admitted.job
        shaped = even_gang(job, self.cluster)
        if shaped is job:
            return admitted
        return Admitted(shaped, admitted is not None and admitted.borrowing)


@dataclass(frozen=True)
class EvenGangStage:
    name: str = "even-gangs"

    def open(self, snapshot: Snapshot, now: float) -> EvenGangGate:
        return EvenGangGate(snapshot.cluster)
