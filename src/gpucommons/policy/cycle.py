"""``schedule()``: one scheduling cycle, in numbered phases.

1. Order the queue (the policy's ``Ordering``).
2. For each job in that order:
   a. reject shapes that can never fit (``never-fits``);
   b. ask the queue discipline whether the job may start out of turn (strict line / backfill);
   c. ask admission (quotas) whether the tenant may start it, and whether it borrows;
   d. place it; if it does not fit and the policy preempts, try displacing candidate victims;
   e. record a start, or a pending reason (which the discipline may refine, e.g. a reservation).
3. Stop early when no later job can start: the strict line is blocked, nothing is free and nothing can be
   preempted, ``scan_limit`` jobs were examined, or nothing is free and ``full_scan_limit`` jobs have
   tried preemption. The rest shares one reason (``CycleResult.others``).

All trial allocations happen inside ``capacity.what_if()`` so the snapshot is unchanged on return.

Within a cycle free capacity only shrinks (starts take it; a preemption frees exactly what its job then
takes, apart from a victim's surplus), so a job shape that failed to place fails again: the cycle
remembers failed shapes and skips them until a preemption happens. Long queues of identical jobs cost
one placement attempt, not one per job. Preemption candidates are likewise computed once per
``Preemptor.scope_key``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from gpucommons.domain.job import Job, Placement
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
    failed: dict[Hashable, PendingReason] = field(default_factory=dict)
    candidates: dict[Hashable, Sequence[RunningJob]] = field(default_factory=dict)


def _shape(job: Job) -> tuple[object, ...]:
    """Everything placement looks at, but not who the job is."""
    return (
        job.gpus,
        job.gpus_per_node,
        job.accepted_models,
        job.accepted_sites,
        job.sovereign,
        job.gpu_milli,
        job.cpu_milli,
        job.memory_mib,
        job.topology,
    )


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
        if capacity.free_total == 0 and config.preemptor is None:
            others: PendingReason | None = NO_CAPACITY  # nothing can start: skip ordering the queue
        else:
            others = _scan(cycle, config.ordering.order(snapshot, now))
    return CycleResult(tuple(cycle.starts), tuple(cycle.preemptions), tuple(cycle.pending), others)


def _scan(cycle: _Cycle, ordered: Iterable[PendingJob]) -> PendingReason | None:
    """Phases 2 and 3: consider jobs in order until nothing more can start; returns the reason the
    unexamined rest waits (``None`` if every job was examined). Jobs that can never fit get their own
    reason and count toward neither limit, so a pile of them cannot hide a job that fits."""
    capacity = cycle.snapshot.capacity
    cluster = cycle.snapshot.cluster
    limit = cycle.config.scan_limit
    can_preempt = cycle.config.preemptor is not None
    gate = cycle.gate
    now = cycle.now
    waiting = cycle.pending
    examined = 0
    full_limit = cycle.config.full_scan_limit
    examined_full = 0
    for pending in ordered:
        full = capacity.free_total == 0
        if full and not can_preempt:
            return NO_CAPACITY
        # Cheap rejections first: most of a long queue stops here.
        reason = never_fits_reason(pending.job, cluster)
        if reason is None:
            if examined >= limit:
                return PendingReason("not-examined", f"beyond the first {limit} jobs examined this cycle")
            if full:
                if examined_full >= full_limit:
                    return PendingReason(
                        "not-examined", f"no free accelerators; {full_limit} jobs tried preemption"
                    )
                examined_full += 1
            examined += 1
            reason = gate.check(pending, now)
        if reason is not None:
            waiting.append((pending.job.id, reason))
        elif not _consider(cycle, pending):
            closed = gate.closed()
            if closed is not None:
                return closed
    return None


def _consider(cycle: _Cycle, pending: PendingJob) -> bool:
    """Phase 2c-e for a job the discipline lets through; returns whether it starts."""
    job = pending.job
    borrowing = False
    reason = None
    if cycle.admission is not None:
        reason, borrowing = cycle.admission.check(pending)
    if reason is None:
        preemptor = cycle.config.preemptor
        key = (_shape(job), None if preemptor is None else preemptor.scope_key(pending, borrowing))
        reason = cycle.failed.get(key)
        if reason is None:
            placement = cycle.config.placer.place(job, cycle.snapshot.capacity)
            if placement is None and preemptor is not None:
                placement = _place_by_preemption(cycle, pending, borrowing, key[1])
            if placement is not None:
                cycle.starts.append(Start(job, placement, borrowing))
                cycle.gate.started(pending, cycle.now)
                if cycle.admission is not None:
                    cycle.admission.started(job, borrowing)
                return True
            reason = PendingReason("resources", f"no room for {job.gpus} GPU(s) now")
            cycle.failed[key] = reason
        reason = cycle.gate.blocked(pending, reason, cycle.now)
    cycle.pending.append((job.id, reason))
    return False


def _place_by_preemption(
    cycle: _Cycle, pending: PendingJob, borrowing: bool, scope: Hashable
) -> Placement | None:
    """Release candidate victims one at a time until the job fits; undo everything if it never does."""
    assert cycle.config.preemptor is not None
    capacity: Capacity = cycle.snapshot.capacity
    scoped = cycle.candidates.get(scope)
    if scoped is None:
        scoped = cycle.config.preemptor.candidates(pending, borrowing, cycle.snapshot, cycle.now)
        cycle.candidates[scope] = scoped
    candidates = [r for r in scoped if r.job.id not in cycle.displaced]
    if not candidates:
        return None
    mark = capacity.mark()
    victims = []
    for victim in candidates:
        capacity.give(victim.placement)
        victims.append(victim)
        placement = cycle.config.placer.place(pending.job, capacity)
        if placement is not None:
            cycle.failed.clear()  # a victim's surplus GPUs may now fit shapes that failed before
            for v in _restore_unneeded(capacity, victims, placement):
                cycle.displaced.add(v.job.id)
                cycle.preemptions.append(Preemption(v.job.id, pending.job.id, "displaced by higher priority"))
                if cycle.admission is not None:
                    cycle.admission.preempted(v)
            return placement
    capacity.rollback(mark)
    return None


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
