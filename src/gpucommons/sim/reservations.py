"""A replay's reservations and checkpointing workload (design note 0016): what a scenario file's
``[[reservations]]`` and ``[checkpoints]`` add to the trace.

- ``ReservationPlan``: a reservation and, optionally, the gang its tenant runs in it: one job per
  occurrence, submitted at the occurrence's start (``job_gpus`` GPUs for ``job_duration_s``, not
  preemptible: a planned run), so the replay shows whether it starts at the reserved time.
- ``CheckpointPlan``: which trace jobs declare a checkpoint interval: those of at least ``min_gpus``
  GPUs, each with probability ``fraction`` drawn from ``random.Random(seed)`` in submission order, so
  the same seed marks the same jobs. A run that sets one models checkpoints in its executor
  (``SimOptions.checkpointing``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.domain.reservation import Reservation
from gpucommons.errors import ConfigError


@dataclass(frozen=True)
class ReservationPlan:
    reservation: Reservation
    job_gpus: int | None = None  # the tenant's gang in each occurrence (``None``: none)
    job_duration_s: float | None = None  # its run time (``None``: the whole window)


@dataclass(frozen=True)
class CheckpointPlan:
    interval_s: float
    fraction: float = 1.0
    min_gpus: int = 1


@dataclass(frozen=True)
class ReservationJob:
    """A gang job of a reservation's tenant: which reservation, and the occurrence it was made for."""

    job_id: int
    reservation_id: int
    reserved_start_s: float


def occurrence_starts(reservation: Reservation, until_s: float) -> list[float]:
    """Starts of the reservation's occurrences, all of them, or those up to ``until_s`` when it repeats
    without end."""
    if reservation.every_s is None:
        return [reservation.start_s]
    starts = []
    k = 0
    while reservation.occurrences is None or k < reservation.occurrences:
        start_s = reservation.start_s + k * reservation.every_s
        if reservation.occurrences is None and start_s > until_s:
            break
        starts.append(start_s)
        k += 1
    return starts


def reservation_jobs(
    plans: Sequence[ReservationPlan], first_id: int, until_s: float
) -> tuple[list[Job], list[ReservationJob]]:
    """The gangs of every plan that has one, numbered from ``first_id`` (above the trace's ids)."""
    jobs: list[Job] = []
    made: list[ReservationJob] = []
    for plan in plans:
        if plan.job_gpus is None:
            continue
        res = plan.reservation
        duration_s = res.duration_s if plan.job_duration_s is None else plan.job_duration_s
        models = frozenset() if res.model is None else frozenset({res.model})
        for start_s in occurrence_starts(res, until_s):
            job_id = first_id + len(jobs)
            jobs.append(
                Job(
                    job_id,
                    res.tenant,
                    plan.job_gpus,
                    start_s,
                    duration_s,
                    duration_s,
                    accepted_models=models,
                    preemptible=False,
                )
            )
            made.append(ReservationJob(job_id, res.id, start_s))
    return jobs, made


def with_checkpoints(jobs: Sequence[Job], plan: CheckpointPlan, seed: int) -> list[Job]:
    """``jobs`` with ``plan``'s interval declared by the jobs it picks (see the module docstring)."""
    rng = random.Random(seed)
    out = []
    for job in sorted(jobs, key=lambda j: (j.submit_s, j.id)):
        if job.gpus >= plan.min_gpus and rng.random() < plan.fraction:
            job = replace(job, checkpoint_interval_s=plan.interval_s)
        out.append(job)
    return out


def check_plans(plans: Sequence[ReservationPlan], cluster: Cluster, where: str) -> None:
    """One-line errors for reservations this cluster cannot hold: a model it lacks, more GPUs than the
    model has, a gang larger than its reservation, or two reservations with one id."""
    ids = [p.reservation.id for p in plans]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{where}: reservation ids must be unique, got {ids}")
    for plan in plans:
        res = plan.reservation
        nodes = [n for n in cluster.nodes if res.model is None or n.model == res.model]
        if res.model is not None and not nodes:
            raise ConfigError(f"{where}: reservation {res.id}: cluster {cluster.name} has no {res.model}")
        total = sum(n.gpus for n in nodes)
        if res.gpus > total:
            raise ConfigError(
                f"{where}: reservation {res.id}: {res.gpus} GPUs asked, the cluster has {total}"
            )
        if plan.job_gpus is not None and plan.job_gpus > res.gpus:
            raise ConfigError(
                f"{where}: reservation {res.id}: job_gpus {plan.job_gpus} exceeds its {res.gpus} GPUs"
            )


@dataclass(frozen=True)
class Workload:
    """A trace with a scenario's additions: the jobs to replay (checkpoint intervals declared, the
    reservations' gangs added), the reservations, their gangs, and whether to model checkpoints."""

    jobs: list[Job]
    reservations: tuple[Reservation, ...]
    made: list[ReservationJob]
    checkpointing: bool


def build_workload(
    jobs: Sequence[Job],
    plans: Sequence[ReservationPlan],
    checkpoints: CheckpointPlan | None,
    seed: int,
    cluster: Cluster,
    where: str,
) -> Workload:
    """``jobs`` with ``checkpoints`` applied and each plan's gang added; checks the plans against
    ``cluster`` (``where`` names the source in an error). Gangs of a reservation without end are made
    up to the last arrival."""
    check_plans(plans, cluster, where)
    out = list(jobs) if checkpoints is None else with_checkpoints(jobs, checkpoints, seed)
    first_id = max((j.id for j in jobs), default=0) + 1
    until_s = max((j.submit_s for j in jobs), default=0.0)
    gangs, made = reservation_jobs(plans, first_id, until_s)
    reservations = tuple(p.reservation for p in plans)
    return Workload([*out, *gangs], reservations, made, checkpoints is not None)
