"""Awards as the policy core sees them: what a tenant was granted, on which models, for how long.

An award guarantees ``guaranteed_gpus`` (after any reclaim) of its ``models`` (empty: any model)
between ``starts_s`` and ``ends_s``, and pays for at most ``gpu_hours_budget`` GPU-hours (``None``:
no budget limit) of which ``gpu_hours_used`` are spent. The live store builds these from award rows;
the simulator from a tenants file or scenario.

``unit``: what a GPU-hour of the budget is. ``"device-hours"``: an hour of any device the award pays
for. ``"reference-hours"``: an hour of the cluster's reference model, so an hour on another model costs
its speed for the job's class (``charge_rate``; design note 0009).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job

DEVICE_HOURS = "device-hours"
REFERENCE_HOURS = "reference-hours"
AWARD_UNITS = (DEVICE_HOURS, REFERENCE_HOURS)


@dataclass(frozen=True, slots=True)
class Award:
    id: int
    tenant: str
    guaranteed_gpus: int
    models: frozenset[str] = field(default_factory=frozenset)
    gpu_hours_budget: float | None = None
    gpu_hours_used: float = 0.0
    starts_s: float = -math.inf
    ends_s: float = math.inf
    unit: str = DEVICE_HOURS

    def active_at(self, t_s: float) -> bool:
        return self.starts_s <= t_s < self.ends_s

    def pays_for(self, model: str) -> bool:
        return not self.models or model.lower() in {m.lower() for m in self.models}

    @property
    def remaining_gpu_hours(self) -> float:
        return math.inf if self.gpu_hours_budget is None else self.gpu_hours_budget - self.gpu_hours_used


def charge_rate(award: Award, cluster: Cluster, job: Job, model: str) -> float:
    """Budget GPU-hours one device-hour of ``model`` costs ``award`` for ``job``: 1 for device-hours
    (and on a speed-blind cluster), else the job's speed there against the reference."""
    return unit_rate(award.unit, cluster, job.job_class, model)


def unit_rate(unit: str, cluster: Cluster, job_class: str, model: str) -> float:
    """``charge_rate`` from its parts, for a store that holds an award's unit and a job's class as
    columns rather than as domain objects."""
    if unit != REFERENCE_HOURS or cluster.speeds is None or not model:
        return 1.0
    return cluster.speeds.speed(job_class, model)
