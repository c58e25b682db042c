"""Single-node placement by scoring node *states*, shared by best-fit, packing, spread and FGD.

Nodes whose free CPU, memory and per-GPU free milli are identical score identically, so instead of
scanning every node the placer scores each state class of ``Capacity.classes()`` once: the work per
placement is bounded by the number of distinct node states, not the number of nodes (an empty 25,000-node
pool is one class). Each candidate is a class plus an *option*: the free milli of the GPU a share would
go on (shares), or 1000 (whole GPUs). Scores are compared as tuples; lower wins, ties keep the class met
first (insertion order, deterministic for a given history). Gangs go to ``fit.gang``.
"""

from __future__ import annotations

from collections.abc import Callable

from gpucommons.domain.job import Job, Placement
from gpucommons.policy.capacity import MILLI, Capacity, StateKey
from gpucommons.policy.placement.fit import gang, usable_pools

Score = tuple[float, ...]
Scorer = Callable[[StateKey, Job, int, int], Score]


def after(key: StateKey, job: Job, eff: int, option: int) -> StateKey:
    """The state a node of class ``key`` would be in after taking ``job`` (share ``eff`` on a GPU with
    ``option`` free milli, or ``job.gpus`` whole GPUs)."""
    pool, cpu, mem, free = key
    values = list(free)
    if job.shared:
        values[values.index(option)] = option - eff
    else:
        for _ in range(job.gpus):
            values[values.index(MILLI)] = 0
    return (pool, cpu - job.cpu_milli, mem - job.memory_mib, tuple(sorted(values)))


def best_option(capacity: Capacity, job: Job, scorer: Scorer) -> tuple[int, int, int] | None:
    """``(node, share milli, option)`` for the lowest-scoring feasible class, or ``None``."""
    usable = dict(usable_pools(job, capacity.cluster))
    best: tuple[Score, StateKey, int, int] | None = None
    for key in capacity.classes():
        pool, cpu, mem, free = key
        eff = usable.get(pool)
        if eff is None or cpu < job.cpu_milli or mem < job.memory_mib:
            continue
        if job.shared:
            options: tuple[int, ...] = tuple({v: None for v in free if v >= eff})
        elif free.count(MILLI) >= job.gpus:
            options = (MILLI,)
        else:
            continue
        for option in options:
            score = scorer(key, job, eff, option)
            if best is None or score < best[0]:
                best = (score, key, eff, option)
    if best is None:
        return None
    _, key, eff, option = best
    node = next(iter(capacity.classes()[key]))
    return node, eff, option


def place_single(capacity: Capacity, job: Job, scorer: Scorer) -> Placement | None:
    """Place a single-node job on the best class by ``scorer``; allocates and returns the placement."""
    choice = best_option(capacity, job, scorer)
    if choice is None:
        return None
    node, eff, option = choice
    if job.shared:
        gpu = next(g for g in range(capacity.gpus_of[node]) if capacity.gpu_free_milli(node, g) == option)
        capacity.allocate_share(node, gpu, eff, job.cpu_milli, job.memory_mib)
        return Placement(((node, (gpu,)),), milli=eff, cpu_milli=job.cpu_milli, memory_mib=job.memory_mib)
    gpus = capacity.allocate(node, job.gpus, job.cpu_milli, job.memory_mib)
    return Placement(((node, gpus),), cpu_milli=job.cpu_milli, memory_mib=job.memory_mib)


class ScoredPlacer:
    """Base for placers defined by a state score: single node first, then a gang if the shape allows."""

    def score(self, key: StateKey, job: Job, eff: int, option: int) -> Score:
        raise NotImplementedError

    def place(self, job: Job, capacity: Capacity) -> Placement | None:
        if job.gpus == 0 and not (job.cpu_milli or job.memory_mib):
            return None
        if job.shared or job.gpus_per_node in (None, job.gpus):
            placement = place_single(capacity, job, self.score)
            if placement is not None or job.shared or job.gpus_per_node is not None:
                return placement
        pools = tuple(p for p, _ in usable_pools(job, capacity.cluster))
        return gang(capacity, job, pools) if job.gpus > 0 else None
