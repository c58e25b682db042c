"""``schedule()``: one scheduling cycle, in numbered phases.

1. Order the queue (the policy's ``Ordering``).
2. For each job in that order:
   a. reject shapes that can never fit (``never-fits``);
   b. ask the queue discipline whether the job may start out of turn (strict line / backfill);
   c. ask admission (quotas) whether the tenant may start it, and whether it borrows;
   d. place it; if it does not fit and the policy preempts, try displacing candidate victims;
   e. record a start, or a pending reason (which the discipline may refine, e.g. a reservation).
3. Stop early when no later job can start: the strict line is blocked, nothing is free and nothing can be
   preempted, or ``scan_limit`` jobs were examined. The rest shares one reason (``CycleResult.others``).

All trial allocations happen inside ``capacity.what_if()`` so the snapshot is unchanged on return.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from gpucommons.domain.job import Placement
from gpucommons.policy.capacity import Capacity
from gpucommons.policy.decisions import CycleResult, PendingReason, Preemption, Start
from gpucommons.policy.placement.shapes import never_fits_reason
from gpucommons.policy.protocols import AdmissionGate, Gate, PolicyConfig
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot

NO_CAPACITY = PendingReason("not-examined", "no free accelerators left in this cycle")


@dataclass
class _Cycle:
    snapshot: Snapshot
    config: PolicyConfig
    now: float
    gate: Gate
    admission: AdmissionGate | None
    starts: list[Start] = field(default_factory=list)
    preemptions: list[Preemption] = field(default_factory=list)
    pending: list[tuple[int, PendingReason]] = field(default_factory=list)
    displaced: set[int] = field(default_factory=set)


def schedule(snapshot: Snapshot, config: PolicyConfig, now: float) -> CycleResult:
    """Decide which pending jobs start where, and which running jobs are preempted, at time ``now``."""
    capacity = snapshot.capacity
    with capacity.what_if():
        cycle = _Cycle(
            snapshot,
            config,
            now,
            gate=config.discipline.open(snapshot, now),
            admission=config.admission.open(snapshot, now) if config.admission else None,
        )
        others = _scan(cycle, config.ordering.order(snapshot, now))
    return CycleResult(tuple(cycle.starts), tuple(cycle.preemptions), tuple(cycle.pending), others)


def _scan(cycle: _Cycle, ordered: Iterable[PendingJob]) -> PendingReason | None:
    """Phases 2 and 3: consider jobs in order until nothing more can start; returns the reason the
    unexamined rest waits (``None`` if every job was examined)."""
    capacity = cycle.snapshot.capacity
    limit = cycle.config.scan_limit
    can_preempt = cycle.config.preemptor is not None
    examined = 0
    for pending in ordered:
        if capacity.free_total == 0 and not can_preempt:
            return NO_CAPACITY
        if examined >= limit:
            return PendingReason("not-examined", f"beyond the first {limit} jobs examined this cycle")
        closed = cycle.gate.closed()
        if closed is not None:
            return closed
        _consider(cycle, pending)
        examined += 1
    return None


def _consider(cycle: _Cycle, pending: PendingJob) -> None:
    job = pending.job
    reason = never_fits_reason(job, cycle.snapshot.cluster) or cycle.gate.check(pending, cycle.now)
    borrowing = False
    if reason is None and cycle.admission is not None:
        reason, borrowing = cycle.admission.check(pending)
    if reason is None:
        placement = cycle.config.placer.place(job, cycle.snapshot.capacity)
        if placement is None and cycle.config.preemptor is not None:
            placement = _place_by_preemption(cycle, pending, borrowing)
        if placement is not None:
            cycle.starts.append(Start(job, placement, borrowing))
            cycle.gate.started(pending, cycle.now)
            if cycle.admission is not None:
                cycle.admission.started(job, borrowing)
            return
        reason = cycle.gate.blocked(
            pending, PendingReason("resources", f"no room for {job.gpus} GPU(s) now"), cycle.now
        )
    cycle.pending.append((job.id, reason))


def _place_by_preemption(cycle: _Cycle, pending: PendingJob, borrowing: bool) -> Placement | None:
    """Release candidate victims one at a time until the job fits; undo everything if it never does."""
    assert cycle.config.preemptor is not None
    capacity: Capacity = cycle.snapshot.capacity
    candidates = [
        r
        for r in cycle.config.preemptor.candidates(pending, borrowing, cycle.snapshot, cycle.now)
        if r.job.id not in cycle.displaced
    ]
    if not candidates:
        return None
    mark = capacity.mark()
    victims = []
    for victim in candidates:
        for node, gpus in victim.placement.node_gpus:
            capacity.release(node, gpus)
        victims.append(victim)
        placement = cycle.config.placer.place(pending.job, capacity)
        if placement is not None:
            used = set(placement.nodes)
            for v in _restore_unneeded(capacity, victims, used):
                cycle.displaced.add(v.job.id)
                cycle.preemptions.append(Preemption(v.job.id, pending.job.id, "displaced by higher priority"))
                if cycle.admission is not None:
                    cycle.admission.preempted(v)
            return placement
    capacity.rollback(mark)
    return None


def _restore_unneeded(capacity: Capacity, victims: list[RunningJob], used: set[int]) -> list[RunningJob]:
    """Give back victims none of whose nodes the placement uses; returns the victims really needed."""
    needed = []
    for victim in victims:
        if used.isdisjoint(victim.placement.nodes):
            for node, gpus in victim.placement.node_gpus:
                capacity.allocate_indices(node, gpus)
        else:
            needed.append(victim)
    return needed
