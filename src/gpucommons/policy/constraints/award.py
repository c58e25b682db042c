"""The ``award`` stage: a job starts only when its tenant holds an active award that pays for the model
it would run on and whose remaining GPU-hour budget covers what is already running on it plus this job.

Budget arithmetic, in GPU-hours, per award: ``remaining = budget - used - projected``, where
``projected`` is what the award's running jobs will spend if they run to their time limits (their
segments are charged when they end) and grows with each start of this cycle. A job needs
``gpus * (time limit - time already served) / 3600``. An award without a budget never runs out. An
award in reference GPU-hours (``Award.unit``, design note 0009) counts each of those hours at the
job's speed on the model: at admission, before the model is known, at the fastest it may be placed on
(the most it can cost), and from the start on, at the model it was placed on.

A tenant listed with no awards at all (``awards[tenant] == ()``: a replay's best-effort tenant) is
let through with nothing to charge; the quota stage then lets it borrow idle capacity, or not. A
tenant missing from the awards (a live project that was never awarded) waits: ``no-award``.

Admission narrows the job to the models its funded awards pay for (a job that named no models may run
on any of them), so the placer only offers devices an award pays for. The start is charged to the
funded award for the placed model that ends first (ties: lowest id), as the live service always did.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from gpucommons.domain.award import REFERENCE_HOURS, Award, charge_rate
from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job, Placement
from gpucommons.metering.pricing import SECONDS_PER_HOUR
from gpucommons.policy.decisions import PendingReason, Start
from gpucommons.policy.protocols import Admitted, Verdict
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot


def needed_gpu_hours(job: Job, attained_gpu_s: float = 0.0) -> float:
    """GPU-hours a job still needs by its time limit."""
    return max(0.0, job.gpus * job.estimate_s - attained_gpu_s) / SECONDS_PER_HOUR


def _projected_gpu_hours(running: RunningJob) -> float:
    return running.job.gpus * max(0.0, running.expected_end_s() - running.started_s) / SECONDS_PER_HOUR


def _model_of(cluster: Cluster, placement: Placement) -> str:
    return cluster.nodes[placement.node_gpus[0][0]].model if placement.node_gpus else ""


@dataclass
class AwardGate:
    cluster: Cluster
    awards: Mapping[str, Sequence[Award]]
    now: float
    projected: defaultdict[int, float]
    need: dict[int, float] = field(default_factory=dict)  # job id -> GPU-hours, from its admission
    _by_id: dict[int, Award] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_id = {a.id: a for group in self.awards.values() for a in group}

    def _current(self, tenant: str) -> list[Award]:
        return [a for a in self.awards.get(tenant, ()) if a.active_at(self.now)]

    def _left(self, award: Award) -> float:
        return award.remaining_gpu_hours - self.projected[award.id]

    def _dearest(self, award: Award, job: Job) -> float:
        """The highest rate ``job`` may pay ``award`` per device-hour, over the models it may run on."""
        if award.unit != REFERENCE_HOURS or self.cluster.speeds is None:
            return 1.0
        models = {p.model.name for p in self.cluster.pools if award.pays_for(p.model.name)}
        if job.accepted_models:
            models &= {m for m in models if m.lower() in {a.lower() for a in job.accepted_models}}
        return max((charge_rate(award, self.cluster, job, m) for m in models), default=1.0)

    checks_placements = False

    def admit(self, pending: PendingJob, admitted: Admitted | None) -> Verdict:
        job = pending.job if admitted is None else admitted.job
        borrowing = admitted is not None and admitted.borrowing
        group = self.awards.get(job.tenant)
        if group is not None and not group:
            return admitted  # a listed best-effort tenant: no award to charge; quota decides
        current = self._current(job.tenant)
        if not current:
            return PendingReason("no-award", f"tenant {job.tenant} has no active award")
        need = needed_gpu_hours(job, pending.attained_gpu_s)
        self.need[job.id] = need
        funded = [a for a in current if self._left(a) >= need * self._dearest(a, job) - 1e-9]
        if not funded:
            best = max(current, key=lambda a: (self._left(a), -a.id))
            left = max(0.0, self._left(best))
            budget = best.gpu_hours_budget or 0.0
            detail = (
                f"award {best.id} has {left:,.2f} of {budget:,.2f} GPU-hours left after running jobs; "
                f"the job needs {need:,.2f}"
            )
            figures = (("left_gpu_hours", left), ("budget_gpu_hours", budget), ("needed_gpu_hours", need))
            return PendingReason("budget", detail, figures=figures)
        if any(not a.models for a in funded):
            return admitted
        paid = frozenset(m for a in funded for m in a.models)
        if job.accepted_models:
            usable = frozenset(m for m in job.accepted_models if m.lower() in {p.lower() for p in paid})
        else:
            usable = frozenset(self._catalog_names(paid))
        if not usable:
            detail = (
                f"the tenant's awards are for {', '.join(sorted(paid))}; "
                f"the job accepts only {', '.join(sorted(job.accepted_models))}"
            )
            return PendingReason("award-model", detail)
        if usable == job.accepted_models:
            return admitted
        return Admitted(replace(job, accepted_models=usable), borrowing)

    def _catalog_names(self, models: frozenset[str]) -> set[str]:
        """The cluster's spelling of award model names (awards compare case-insensitively)."""
        lowered = {m.lower() for m in models}
        names = {p.model.name for p in self.cluster.pools if p.model.name.lower() in lowered}
        return names or set(models)

    def accept(self, job: Job, placement: Placement, victims: Sequence[RunningJob]) -> PendingReason | None:
        return None

    def started(self, start: Start) -> Start:
        node = self.cluster.nodes[start.placement.node_gpus[0][0]] if start.placement.node_gpus else None
        model = node.model if node is not None else ""
        need = self.need.get(start.job.id, needed_gpu_hours(start.job))
        current = [a for a in self._current(start.job.tenant) if a.pays_for(model)]
        rates = {a.id: charge_rate(a, self.cluster, start.job, model) for a in current}
        usable = [a for a in current if self._left(a) >= need * rates[a.id] - 1e-9] or current
        if not usable:
            return start
        usable.sort(key=lambda a: (a.ends_s, a.id))
        award = usable[0]
        self.projected[award.id] += need * rates[award.id]
        return replace(start, award_id=award.id)

    def preempted(self, running: RunningJob) -> None:
        if running.award_id is not None:
            self.projected[running.award_id] -= _projected_gpu_hours(running) * self._rate_of(running)

    def _rate_of(self, running: RunningJob) -> float:
        award = self._by_id.get(running.award_id) if running.award_id is not None else None
        if award is None:
            return 1.0
        return charge_rate(award, self.cluster, running.job, _model_of(self.cluster, running.placement))

    def evictions(self) -> Sequence[tuple[RunningJob, str]]:
        return ()


@dataclass(frozen=True)
class AwardStage:
    name: str = "award"

    def open(self, snapshot: Snapshot, now: float) -> AwardGate | None:
        if snapshot.awards is None:
            return None
        projected: defaultdict[int, float] = defaultdict(float)
        gate = AwardGate(snapshot.cluster, snapshot.awards, now, projected)
        # A rate other than 1 needs the job's model: only for an award in reference hours on a
        # speed-aware cluster (this runs over every running job, every cycle).
        speed_aware = snapshot.cluster.speeds is not None
        priced = {a.id for a in gate._by_id.values() if a.unit == REFERENCE_HOURS} if speed_aware else set()
        for running in snapshot.running.values():
            award_id = running.award_id
            if award_id is None:
                continue
            hours = _projected_gpu_hours(running)
            projected[award_id] += hours * gate._rate_of(running) if award_id in priced else hours
        return gate
