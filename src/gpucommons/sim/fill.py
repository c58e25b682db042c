"""The "fill" experiment of the FGD paper (Weng et al., ATC'23): how full can a placer pack a cluster?

Pods arrive one by one and never leave; each is placed or fails for good. The arrival stream is the pod
list in ``random.Random(seed)`` shuffled order, followed, when the list asks for less than the target,
by pods drawn from the list with replacement (as the paper's simulator inflates the default trace, which
alone asks for ~120 % of openb's GPUs). The stream stops before the first pod whose GPUs would push the
requested total past ``demand`` x cluster GPUs (1.3 = 130 %). GPU demand counts shares as fractions;
CPU-only pods (``gpus == 0``) arrive and take CPU/memory but add nothing to GPU demand, the paper
simulator's convention (their GPU request is 0).

Reported: ``gpu_allocation_ratio`` = GPU milli allocated / cluster GPU milli at the end, and a curve
sampled every ``step`` of arrived demand with the allocation ratio and the fragmentation ratio: the
expected GPU milli the pod mix could not use (FGD's measure) over cluster GPU milli. ``power_w`` (at each
point and at the end) is the datacenter's draw in watts under the PWR paper's node power model
(``policy/placement/pwr.py``: idle GPUs and sockets at idle power, busy ones at peak, every node counted),
whatever the placer, so placers compare at equal allocation.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.errors import InvalidRequestError
from gpucommons.policy.capacity import MILLI, Capacity
from gpucommons.policy.placement.fgd import FragmentationPlacer
from gpucommons.policy.placement.pwr import NodePowerModel, PowerMeter
from gpucommons.policy.protocols import Placer, Seeded, WorkloadAware


@dataclass(frozen=True, slots=True)
class CurvePoint:
    arrived_demand: float  # GPUs requested so far / cluster GPUs
    gpu_allocation_ratio: float
    fragmentation_ratio: float
    power_w: float  # datacenter power under the PWR paper's model


@dataclass(frozen=True)
class FillResult:
    cluster_gpus: int
    demand: float
    arrived: int
    placed: int
    failed: int
    arrived_demand: float
    gpu_allocation_ratio: float
    fragmentation_ratio: float
    curve: Sequence[CurvePoint]
    power_w: float


def job_milli(job: Job) -> int:
    """GPU milli a job requests (a share counts as its fraction of one GPU)."""
    return job.gpu_milli if job.shared else job.gpus * MILLI


def fill_stream(pods: Sequence[Job], cluster_gpus: int, demand: float, seed: int) -> list[Job]:
    """The arrival order: shuffled pods, then pods drawn with replacement, up to ``demand`` x GPUs."""
    if demand <= 0:
        raise InvalidRequestError(f"--demand must be > 0, got {demand}")
    if not any(job_milli(p) for p in pods):
        raise InvalidRequestError("the fill experiment needs pods that request GPUs")
    rng = random.Random(seed)
    order = list(pods)
    rng.shuffle(order)
    target = demand * cluster_gpus * MILLI
    next_id = max(p.id for p in pods) + 1
    out: list[Job] = []
    total = 0
    i = 0
    while True:
        if i < len(order):
            job = order[i]
        else:
            job = replace(rng.choice(pods), id=next_id)
            next_id += 1
        i += 1
        if total + job_milli(job) > target:
            return out
        total += job_milli(job)
        out.append(job)


def run_fill(
    pods: Sequence[Job],
    cluster: Cluster,
    placer: Placer,
    demand: float,
    seed: int,
    step: float = 0.01,
    power: NodePowerModel | None = None,
) -> FillResult:
    """Place the fill stream with ``placer``; deterministic for the same inputs. A ``Seeded`` placer
    breaks ties from ``seed`` too. ``power``: the node power model the draw is measured with (default:
    the PWR paper's)."""
    stream = fill_stream(pods, cluster.total_gpus, demand, seed)
    if isinstance(placer, WorkloadAware):
        placer.observe_workload(pods)
    if isinstance(placer, Seeded):
        placer.reseed(seed)  # one seed for the arrival order and the tie-breaks, as in the paper's runs
    meter = FragmentationPlacer(pods)  # the GPU jobs' shapes, whichever placer runs
    watts = PowerMeter(power)
    capacity = Capacity(cluster)
    cluster_milli = cluster.total_gpus * MILLI
    curve: list[CurvePoint] = []
    arrived_milli = placed = 0
    next_sample = step
    for job in stream:
        if placer.place(job, capacity) is not None:
            placed += 1
        arrived_milli += job_milli(job)
        while arrived_milli / cluster_milli >= next_sample - 1e-12:
            curve.append(_point(capacity, meter, watts, arrived_milli / cluster_milli))
            next_sample += step
    last = _point(capacity, meter, watts, arrived_milli / cluster_milli)
    return FillResult(
        cluster_gpus=cluster.total_gpus,
        demand=demand,
        arrived=len(stream),
        placed=placed,
        failed=len(stream) - placed,
        arrived_demand=last.arrived_demand,
        gpu_allocation_ratio=last.gpu_allocation_ratio,
        fragmentation_ratio=last.fragmentation_ratio,
        curve=tuple(curve),
        power_w=last.power_w,
    )


def cluster_fragmentation_milli(capacity: Capacity, meter: FragmentationPlacer) -> float:
    """Expected idle GPU milli the workload mix cannot use, summed over nodes (by state class)."""
    meter.bind(capacity)
    return sum(meter.fragmentation(key) * len(nodes) for key, nodes in capacity.classes().items())


def _point(capacity: Capacity, meter: FragmentationPlacer, watts: PowerMeter, arrived: float) -> CurvePoint:
    cluster_milli = capacity.cluster.total_gpus * MILLI
    return CurvePoint(
        arrived_demand=round(arrived, 6),
        gpu_allocation_ratio=round(capacity.allocated_milli / cluster_milli, 6),
        fragmentation_ratio=round(cluster_fragmentation_milli(capacity, meter) / cluster_milli, 6),
        power_w=round(watts.cluster_w(capacity), 1),
    )
