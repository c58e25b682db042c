"""The workload generator: an allocation call turned into tenants (with awards, kinds, guarantees) and
jobs, from ``random.Random(seed)`` alone, independent of the pool's size, so every size and policy of a
plan sees the same demand.

- Funded projects of a kind share the kind's awarded servers: each gets one, the rest go one at a time
  to a project drawn at random, none above ``MAX_PROJECT_SERVERS`` (the call's cap, 256 H200 = 32
  servers). Unfunded proposals share what their kind asked, the same way; they hold no award.
- Consortia each hold ``consortia.gpus`` as a guarantee.
- Each tenant submits jobs until their GPU-hours reach its use share (``DemandSpec``) of what it holds
  or asked over the period, times ``growth``. Submit times are uniform over the period (a Poisson
  stream conditioned on its count); run times are log-normal, capped at ``max_job_h``; sizes follow
  ``size_weights`` over 1, 2, 4, 8 GPUs and whole-server gangs up to the tenant's award or ask.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from gpucommons.domain.award import Award
from gpucommons.domain.job import Job
from gpucommons.planner.scenario import GPUS_PER_SERVER, DemandSpec, PlanScenarioSpec, ProjectsSpec

MAX_PROJECT_SERVERS = 32
SMALL_SIZES = (1, 2, 4, 8)
HOUR_S = 3600.0
MIN_JOB_S = 60.0
CONSORTIUM_KIND = "consortium"
CONSORTIUM_SIZES = (0.25, 0.5, 1.0)  # a team's runs: a quarter, half or all of its guarantee
CONSORTIUM_SIGMA = 0.5


@dataclass(frozen=True)
class TenantPlan:
    tenant: str
    kind: str
    gpus: int  # awarded (funded) or asked (unfunded)
    funded: bool
    use: float  # the share of ``gpus`` x period it submits


@dataclass(frozen=True)
class Workload:
    tenants: tuple[TenantPlan, ...]
    jobs: tuple[Job, ...]

    def awards(self) -> dict[str, tuple[Award, ...]]:
        out: dict[str, tuple[Award, ...]] = {}
        next_id = 1
        for t in self.tenants:
            out[t.tenant] = (Award(next_id, t.tenant, t.gpus),) if t.funded else ()
            next_id += t.funded
        return out

    def quotas(self) -> dict[str, int]:
        return {t.tenant: t.gpus if t.funded else 0 for t in self.tenants}

    def kinds(self) -> dict[str, str]:
        return {t.tenant: t.kind for t in self.tenants}

    @property
    def guaranteed_gpus(self) -> int:
        return sum(t.gpus for t in self.tenants if t.funded)


def _shares(rng: random.Random, group: ProjectsSpec) -> list[int]:
    """Servers per project: one each, the rest one by one to random projects below the cap."""
    servers = [1] * group.projects
    below_cap = list(range(group.projects))  # projects that may take another server
    for _ in range(min(group.servers - group.projects, group.projects * (MAX_PROJECT_SERVERS - 1))):
        pick = rng.randrange(len(below_cap))
        project = below_cap[pick]
        servers[project] += 1
        if servers[project] == MAX_PROJECT_SERVERS:
            below_cap[pick] = below_cap[-1]
            below_cap.pop()
    return servers


def call_tenants(spec: PlanScenarioSpec, rng: random.Random) -> list[TenantPlan]:
    demand = spec.demand
    tenants: list[TenantPlan] = []
    for funded, groups, use in (
        (True, spec.funded, demand.award_use),
        (False, spec.unfunded, demand.unfunded_use),
    ):
        for group in groups:
            label = group.kind if funded else f"{group.kind}-ask"
            for n, servers in enumerate(_shares(rng, group), start=1):
                tenants.append(
                    TenantPlan(f"{label}-{n:03d}", group.kind, servers * GPUS_PER_SERVER, funded, use)
                )
    for n in range(1, spec.consortia.teams + 1):
        tenants.append(
            TenantPlan(f"consortium-{n}", CONSORTIUM_KIND, spec.consortia.gpus, True, demand.consortium_use)
        )
    return tenants


def _project_size(rng: random.Random, demand: DemandSpec, cap_gpus: int) -> int:
    choice = rng.choices(range(len(demand.size_weights)), demand.size_weights)[0]
    if choice < len(SMALL_SIZES):
        return min(SMALL_SIZES[choice], cap_gpus)
    servers = cap_gpus // GPUS_PER_SERVER
    return GPUS_PER_SERVER * (rng.randint(2, servers) if servers >= 2 else 1)


def _tenant_jobs(rng: random.Random, tenant: TenantPlan, spec: PlanScenarioSpec, first_id: int) -> list[Job]:
    demand = spec.demand
    period_s = spec.period_days * 86_400.0
    target_gpu_s = tenant.use * demand.growth * tenant.gpus * period_s
    consortium = tenant.kind == CONSORTIUM_KIND
    median_s = (demand.consortium_job_h if consortium else demand.median_job_h) * HOUR_S
    sigma = CONSORTIUM_SIGMA if consortium else demand.sigma
    max_s = max(median_s, demand.max_job_h * HOUR_S)
    jobs: list[Job] = []
    offered_gpu_s = 0.0
    while offered_gpu_s < target_gpu_s:
        if consortium:
            gpus = max(
                GPUS_PER_SERVER,
                int(tenant.gpus * rng.choice(CONSORTIUM_SIZES)) // GPUS_PER_SERVER * GPUS_PER_SERVER,
            )
            job_class = "llm-pretrain"
        else:
            gpus = _project_size(rng, demand, tenant.gpus)
            job_class = "inference" if rng.random() < demand.inference_share else "llm-finetune"
        duration_s = min(max_s, max(MIN_JOB_S, rng.lognormvariate(math.log(median_s), sigma)))
        jobs.append(
            Job(
                id=first_id + len(jobs),
                tenant=tenant.tenant,
                gpus=gpus,
                submit_s=round(rng.uniform(0.0, period_s), 3),
                duration_s=round(duration_s, 3),
                estimate_s=round(duration_s, 3),
                gpus_per_node=GPUS_PER_SERVER if gpus > GPUS_PER_SERVER else None,
                job_class=job_class,
            )
        )
        offered_gpu_s += gpus * duration_s
    return jobs


def generate_workload(spec: PlanScenarioSpec, seed: int) -> Workload:
    """Tenants and jobs of ``spec``'s call; the same spec and seed give the same workload."""
    rng = random.Random(seed)
    tenants = call_tenants(spec, rng)
    jobs: list[Job] = []
    for tenant in tenants:
        if tenant.use > 0:
            jobs.extend(_tenant_jobs(rng, tenant, spec, len(jobs) + 1))
    return Workload(tuple(tenants), tuple(jobs))
