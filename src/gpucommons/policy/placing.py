"""Phase 2d of a scheduling cycle (``cycle.py``): placing a job, and placing it by preemption.

- ``place``: the placer's placement, accepted by every stage that checks placements (power); across
  sites in the siting gate's order where a job may use several; with the nodes a fence keeps the job
  off (reservations, design note 0016) marked down while it places (``hide``/``show``, logged in the
  undo log like any change, so the snapshot is unchanged when the cycle returns);
- ``place_by_preemption``: release candidate victims, best first, until the job fits; the victims are
  the policy preemptor's and, with priority classes in play, lower classes' jobs (``_candidates``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from gpucommons.domain.job import Job, Placement
from gpucommons.policy.capacity import MILLI, Capacity
from gpucommons.policy.decisions import PendingReason, Preemption
from gpucommons.policy.lost_work import since_checkpoint_s
from gpucommons.policy.protocols import Admitted, Fence
from gpucommons.policy.snapshot import PendingJob, RunningJob

if TYPE_CHECKING:
    from gpucommons.policy.cycle import _Cycle


def needs_whole_gpus(job: Job) -> bool:
    return job.gpus > 0 and not job.shared


def accepts(
    cycle: _Cycle, job: Job, placement: Placement, victims: Sequence[RunningJob] = ()
) -> PendingReason | None:
    for stage in cycle.checking:
        reason = stage.accept(job, placement, victims)
        if reason is not None:
            return reason
    return None


def place(
    cycle: _Cycle, job: Job, fence: Fence | None = None
) -> tuple[Placement | None, PendingReason | None]:
    """Phase 2d: a placement every stage accepts (kept allocated), or why there is none: ``(None,
    None)`` when it did not fit, ``(None, reason)`` when a stage refused the placement found. A job
    several sites could take tries them in the siting gate's order; the first that takes it wins. A
    fenced job's placer does not see the fenced nodes (they are marked down while it places)."""
    if fence is not None:
        hidden = _hide(cycle.snapshot.capacity, fence, needs_whole_gpus(job))
        found = place(cycle, job)
        _show(cycle.snapshot.capacity, hidden)
        return found
    if cycle.siting is not None:
        order = cycle.siting.site_order(job)
        if len(order) > 1:
            return _place_by_site(cycle, job, order)
    return place_in(cycle, job)


def _hide(capacity: Capacity, fence: Fence, whole_gpus: bool) -> Sequence[int]:
    """Mark the fence's nodes down (those up; for a whole-GPU job, those with a free GPU: no other can
    take it); returns them, for ``_show``. Logged like any change, so a rollback restores them too."""
    if whole_gpus:
        hidden = [n for n in fence.nodes if capacity.free_gpus(n)]
    else:
        hidden = [n for n in fence.nodes if capacity.is_up(n)]
    for node in hidden:
        capacity.set_up(node, False)
    return hidden


def _show(capacity: Capacity, hidden: Sequence[int]) -> None:
    for node in hidden:
        capacity.set_up(node, True)


def _place_by_site(
    cycle: _Cycle, job: Job, order: Sequence[str]
) -> tuple[Placement | None, PendingReason | None]:
    """The first site in ``order`` that takes the job on nodes already busy; if every site that can
    take it would have to wake an idle node, the first of those. (A woken node adds its base power,
    more than a better site saves per GPU, and fragments the pool: site preference must not cost
    packing quality.)"""
    capacity = cycle.snapshot.capacity
    refused: PendingReason | None = None
    waking: Job | None = None  # the best site's narrowed job, where it would wake a node
    for site in order:
        narrowed = replace(job, accepted_sites=frozenset((site,)))
        mark = capacity.mark()
        placement, reason = place_in(cycle, narrowed)
        if placement is None:
            refused = refused or reason
            continue
        if not _wakes_a_node(capacity, placement):
            return placement, None
        capacity.rollback(mark)
        waking = waking or narrowed
    if waking is not None:
        return place_in(cycle, waking)  # the same state as when it was found: the same placement
    return None, refused


def _wakes_a_node(capacity: Capacity, placement: Placement) -> bool:
    """Whether the (allocated) placement took a node that held nothing before it."""
    nodes = capacity.cluster.nodes
    for node, gpus in placement.node_gpus:
        total = nodes[node].gpus
        free_milli = sum(capacity.gpu_free_milli(node, g) for g in range(total))
        if free_milli + len(gpus) * placement.milli == total * MILLI:
            return True
    return False


def place_in(cycle: _Cycle, job: Job) -> tuple[Placement | None, PendingReason | None]:
    capacity = cycle.snapshot.capacity
    if not cycle.checking:
        return cycle.config.placer.place(job, capacity), None
    mark = capacity.mark()
    placement = cycle.config.placer.place(job, capacity)
    if placement is None:
        return None, None
    refused = accepts(cycle, job, placement)
    if refused is not None:
        capacity.rollback(mark)
        return None, refused
    return placement, None


def place_by_preemption(
    cycle: _Cycle, pending: PendingJob, admitted: Admitted, scope: Hashable, fence: Fence | None = None
) -> Placement | None:
    """Release candidate victims one at a time until the job fits; undo everything if it never does.
    A fenced job displaces no job that holds only fenced nodes, and never places on them: what a
    victim frees there is hidden with the rest of the fence."""
    capacity: Capacity = cycle.snapshot.capacity
    job = admitted.job
    scoped = cycle.candidates.get(scope)
    if scoped is None:
        scoped = cycle.candidates[scope] = _candidates(cycle, pending, admitted.borrowing)
    candidates = [r for r in scoped if r.job.id not in cycle.displaced]
    if not candidates:
        return None
    mark = capacity.mark()
    fenced = frozenset(fence.nodes) if fence is not None else frozenset()
    hidden = [] if fence is None else list(_hide(capacity, fence, needs_whole_gpus(job)))
    victims = []
    for victim in candidates:
        inside = [n for n, _ in victim.placement.node_gpus if n in fenced] if fenced else []
        if inside and len(inside) == len(victim.placement.node_gpus):
            continue  # it frees nothing this job may use
        capacity.give(victim.placement)
        for node in inside:
            if capacity.is_up(node):
                capacity.set_up(node, False)
                hidden.append(node)
        victims.append(victim)
        placement = cycle.config.placer.place(job, capacity)
        if placement is not None:
            needed = _restore_unneeded(capacity, victims, placement)
            if cycle.checking and accepts(cycle, job, placement, needed) is not None:
                break
            _show(capacity, hidden)
            cycle.failed.clear()  # a victim's surplus GPUs may now fit shapes that failed before
            for v in needed:
                cycle.displaced.add(v.job.id)
                cycle.preemptions.append(Preemption(v.job.id, pending.job.id, "displaced by higher priority"))
                for stage in cycle.stages:
                    stage.preempted(v)
            return placement
    capacity.rollback(mark)
    return None


def _candidates(cycle: _Cycle, pending: PendingJob, borrowing: bool) -> Sequence[RunningJob]:
    """Victims for ``pending``, best first: with priority classes in play, the running preemptible
    jobs of lower classes first (when its class preempts them; lowest class, then newest, first),
    then the policy preemptor's, never of a higher class than ``pending``."""
    preemptor = cycle.config.preemptor
    found = () if preemptor is None else preemptor.candidates(pending, borrowing, cycle.snapshot, cycle.now)
    classes = cycle.classes
    if classes is None:
        return found
    mine = classes.of(pending.job.priority_class)
    allowed = [r for r in found if classes.of(r.job.priority_class).priority <= mine.priority]
    if not mine.preempts_lower:
        return allowed
    lower = [
        r
        for r in cycle.snapshot.running.values()
        if r.job.preemptible and classes.of(r.job.priority_class).priority < mine.priority
    ]
    if cycle.config.checkpoint_aware:  # the least work lost per GPU first (``policy/lost_work.py``)
        now = cycle.now
        lower.sort(
            key=lambda r: (
                classes.of(r.job.priority_class).priority,
                since_checkpoint_s(r, now),
                -r.started_s,
                r.job.id,
            )
        )
    else:
        lower.sort(key=lambda r: (classes.of(r.job.priority_class).priority, -r.started_s, r.job.id))
    first = {r.job.id for r in lower}
    return [*lower, *(r for r in allowed if r.job.id not in first)]


def _devices(placement: Placement) -> set[tuple[int, int]]:
    return {(node, gpu) for node, gpus in placement.node_gpus for gpu in gpus}


def _restore_unneeded(
    capacity: Capacity, victims: list[RunningJob], placement: Placement
) -> list[RunningJob]:
    """Give back victims none of whose devices the placement took; returns the victims really needed.
    (A shared placement counts as using its device.)"""
    used = _devices(placement)
    needed = []
    for victim in victims:
        if used.isdisjoint(_devices(victim.placement)) and (
            (placement.cpu_milli == 0 and placement.memory_mib == 0)
            or set(placement.nodes).isdisjoint(victim.placement.nodes)
        ):
            capacity.take(victim.placement)
        else:
            needed.append(victim)
    return needed
