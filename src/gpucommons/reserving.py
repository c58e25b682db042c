"""Pure rules of reservations as the service checks them at creation (design note 0016, "Reservations
in the service"): what a model's pool can hold in whole nodes, the occurrences of a recurring
reservation inside a horizon, and the first instant at which overlapping reservations would hold more
GPUs than a capacity. No database or clock here; ``store/reservations.py`` feeds it rows and the
cluster.

Overlaps are checked only where the new reservation holds GPUs, and only inside ``CHECK_HORIZON_S``
from its first start: two reservations repeating without end could otherwise need every occurrence
until the end of time compared. Reservations repeat at most hourly (``MIN_EVERY_S``), so one horizon
holds at most 8,784 occurrences of each.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.reservation import Reservation

CHECK_HORIZON_S = 366 * 86_400.0
MIN_EVERY_S = 3_600.0


@dataclass(frozen=True)
class ModelPool:
    """What the cluster holds of one model, in GPUs: the node size reservations count in (the least
    common multiple of its pools' node sizes, so any multiple of it is whole nodes in every pool), how
    many it can reserve in such units, and its largest NVLink domain and network block."""

    model: str
    node_gpus: int
    gpus: int
    nvlink_gpus: int
    block_gpus: int


def model_pool(cluster: Cluster, model: str) -> ModelPool | None:
    """The pool of ``model`` (matched without regard to case); ``None`` if no pool has it."""
    pools = [p for p in cluster.pools if p.model.name.lower() == model.lower()]
    if not pools:
        return None
    node_gpus = math.lcm(*(p.gpus_per_node for p in pools))
    return ModelPool(
        model=pools[0].model.name,
        node_gpus=node_gpus,
        gpus=sum(p.gpus // node_gpus * node_gpus for p in pools),
        nvlink_gpus=max(min(p.topology.nvlink_domain_nodes, p.node_count) * p.gpus_per_node for p in pools),
        block_gpus=max(
            min(p.topology.block_nodes or p.node_count, p.node_count) * p.gpus_per_node for p in pools
        ),
    )


def cluster_models(cluster: Cluster) -> list[str]:
    """The models a reservation may name, sorted."""
    return sorted({p.model.name for p in cluster.pools})


def windows(reservation: Reservation, since_s: float, until_s: float) -> Iterator[tuple[float, float]]:
    """The occurrences of ``reservation`` that overlap ``[since_s, until_s)``, in order."""
    duration_s = reservation.duration_s
    if reservation.every_s is None:
        if reservation.start_s < until_s and reservation.end_s > since_s:
            yield reservation.start_s, reservation.end_s
        return
    every_s = reservation.every_s
    k = max(0, math.floor((since_s - reservation.start_s - duration_s) / every_s))
    while reservation.occurrences is None or k < reservation.occurrences:
        start_s = reservation.start_s + k * every_s
        if start_s >= until_s:
            return
        if start_s + duration_s > since_s:
            yield start_s, start_s + duration_s
        k += 1


def last_end_s(reservation: Reservation) -> float | None:
    """When its last occurrence ends; ``None`` for one that repeats without end."""
    if reservation.every_s is None:
        return reservation.end_s
    if reservation.occurrences is None:
        return None
    return reservation.end_s + (reservation.occurrences - 1) * reservation.every_s


@dataclass(frozen=True)
class Overbooked:
    """The first instant at which the new reservation and those overlapping it hold ``gpus`` GPUs, more
    than the capacity; ``others``: the ids of those overlapping it then."""

    at_s: float
    gpus: int
    others: tuple[int, ...]


def first_overbooking(
    new: Reservation, others: Sequence[Reservation], capacity_gpus: int, horizon_s: float = CHECK_HORIZON_S
) -> Overbooked | None:
    """Whether ``new`` together with ``others`` would ever hold more than ``capacity_gpus`` at once while
    ``new`` holds GPUs, inside ``horizon_s`` from its first start. A sweep over every occurrence's start
    and end: at one instant ends come before starts, since an occurrence holds its GPUs up to its end,
    not at it."""
    since_s, until_s = new.start_s, new.start_s + horizon_s
    own = list(windows(new, since_s, until_s))
    if not own:
        return None
    span = (own[0][0], own[-1][1])
    events: list[tuple[float, int, int, int]] = []  # (time, 0 end | 1 start, reservation id, GPUs)
    for reservation in (new, *others):
        for start_s, end_s in windows(reservation, *span) if reservation is not new else own:
            events.append((start_s, 1, reservation.id, reservation.gpus))
            events.append((end_s, 0, reservation.id, reservation.gpus))
    events.sort()
    held: dict[int, int] = {}  # reservation id -> occurrences in force (one, unless ``every`` is short)
    total = 0
    for at_s, starts, reservation_id, gpus in events:
        if starts:
            held[reservation_id] = held.get(reservation_id, 0) + 1
            total += gpus
        else:
            held[reservation_id] -= 1
            total -= gpus
        if starts and total > capacity_gpus and held.get(new.id, 0):
            overlapping = tuple(sorted(i for i, n in held.items() if n and i != new.id))
            return Overbooked(at_s, total, overlapping)
    return None
