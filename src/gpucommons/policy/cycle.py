"""``schedule()``: one scheduling cycle, in named phases.

0. ``_open``: open the discipline's gate and each admission stage's gate for this cycle.
1. ``_evict``: stop what a stage requires stopped before anything starts (a site cap that fell, a
   reservation's window opening); ``_start_held``: a reservation's own jobs start on the nodes it
   holds, out of turn (they take nothing a job ahead of them may use; design note 0016).
2. ``_scan``: walk the queue in the policy's order (``Ordering``); for each job:
   a. ``_filter``: reject shapes that can never fit (``never-fits``, ``residency``);
   b. ``_admit``: the stages in order (award, residency, gangs, array limit, quota, power) may refuse
      the job or narrow it (models, sites, gang shape) and say whether it borrows. A job refused here
      for who it is (no award, budget, array limit, quota), or by the filter, counts toward no scan
      limit: a pile of unfunded jobs cannot hide a funded one. A refusal for lack of capacity now
      (``power``) counts, as a placement that failed does, so a site at its cap does not make every
      cycle scan the whole queue;
   c. ask the queue discipline whether the job may start out of turn (strict line / backfill);
   d. ``placing.place``: place it, away from the nodes a fence (reservations) keeps it off; each
      stage must ``accept`` the placement (power); if it does not fit and the policy preempts,
      ``placing.place_by_preemption`` tries displacing candidate victims;
   e. ``_record_start``: book the start with every stage, or record a pending reason (which the
      discipline may refine, e.g. a reservation).
3. Stop early when no later job can start: the strict line is blocked, nothing is free (no whole GPU,
   and no pending job could use a share or CPUs alone) and nothing can be preempted, ``scan_limit``
   jobs were examined, or nothing is free and ``full_scan_limit`` jobs have tried preemption. The rest
   shares one reason (``CycleResult.others``).

All trial allocations happen inside ``capacity.what_if()`` so the snapshot is unchanged on return.

Within a cycle free capacity only shrinks (starts take it; a preemption frees exactly what its job then
takes, apart from a victim's surplus), so a job shape that failed to place fails again: the cycle
remembers failed shapes and skips them until a preemption happens. Long queues of identical jobs cost
one placement attempt, not one per job. Preemption candidates are likewise computed once per
``Preemptor.scope_key``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import cast

from gpucommons.domain.job import Job
from gpucommons.policy.decisions import CAPACITY_CODES, CycleResult, PendingReason, Preemption, Start
from gpucommons.policy.placement.shapes import never_fits_reason
from gpucommons.policy.placing import needs_whole_gpus, place, place_by_preemption, place_in
from gpucommons.policy.priority import DEFAULT_CLASS, PriorityClasses
from gpucommons.policy.protocols import (
    BORROWS,
    Admitted,
    Gate,
    NodeFence,
    PolicyConfig,
    SitePreference,
    StageGate,
)
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot

NO_CAPACITY = PendingReason("not-examined", "no free accelerators left in this cycle")


@dataclass(slots=True)
class _Cycle:
    snapshot: Snapshot
    config: PolicyConfig
    now: float
    gate: Gate
    stages: tuple[StageGate, ...]
    admitting: tuple[StageGate, ...] = ()  # the stages whose ``admit`` can refuse or narrow a job
    checking: tuple[StageGate, ...] = ()  # the stages whose ``accept`` can refuse a placement
    classes: PriorityClasses | None = None  # ``None``: every job is of the default class
    siting: SitePreference | None = None  # the gate that orders the sites a job may use, if any
    fence: NodeFence | None = None  # the gate that keeps jobs off nodes held for others, if any
    can_preempt: bool = False  # a preemptor, or a class that preempts lower ones
    starts: list[Start] = field(default_factory=list)
    preemptions: list[Preemption] = field(default_factory=list)
    pending: list[tuple[int, PendingReason]] = field(default_factory=list)
    displaced: set[int] = field(default_factory=set)
    started_early: set[int] = field(default_factory=set)  # started by ``_start_held``
    failed: dict[Hashable, PendingReason] = field(default_factory=dict)
    candidates: dict[Hashable, Sequence[RunningJob]] = field(default_factory=dict)


def schedule(snapshot: Snapshot, config: PolicyConfig, now: float) -> CycleResult:
    """Decide which pending jobs start where, and which running jobs are preempted, at time ``now``."""
    capacity = snapshot.capacity
    with capacity.what_if():
        cycle = _open(snapshot, config, now)
        if cycle.stages:
            _evict(cycle)
        if cycle.fence is not None:
            _start_held(cycle)
        if capacity.free_total == 0 and not cycle.can_preempt and snapshot.pending_fractional == 0:
            others: PendingReason | None = NO_CAPACITY  # nothing can start: skip ordering the queue
        else:
            ordered = _order(cycle)
            early = cycle.started_early
            if early:
                ordered = (p for p in ordered if p.job.id not in early)
            others = _scan(cycle, ordered)
    return CycleResult(tuple(cycle.starts), tuple(cycle.preemptions), tuple(cycle.pending), others)


def _open(snapshot: Snapshot, config: PolicyConfig, now: float) -> _Cycle:
    """Phase 0: each piece's per-cycle state; stages with nothing to check this cycle drop out."""
    gates: list[StageGate] = []
    for stage in config.stages:
        gate = stage.open(snapshot, now)
        if gate is not None:
            gates.append(gate)
    checking = tuple(g for g in gates if g.checks_placements) if gates else ()
    # A gate that says ``admits_all`` (reservations: it keeps jobs off nodes, it refuses no one) is
    # left out of the per-job admission loop, so quota alone still takes its direct call.
    admitting = tuple(g for g in gates if not getattr(g, "admits_all", False)) if gates else ()
    classes = config.priority_classes if _classed(snapshot) else None
    can_preempt = config.preemptor is not None or (classes is not None and classes.any_preempts)
    # ``hasattr``, not ``isinstance`` on the runtime-checkable protocol: that costs microseconds per
    # gate, and this runs every cycle.
    siting = (
        next((cast(SitePreference, g) for g in gates if hasattr(g, "site_order")), None) if gates else None
    )
    fence = next((cast(NodeFence, g) for g in gates if hasattr(g, "fence_for")), None) if gates else None
    return _Cycle(
        snapshot,
        config,
        now,
        config.discipline.open(snapshot, now),
        tuple(gates),
        admitting,
        checking,
        classes=classes,
        siting=siting,
        fence=fence,
        can_preempt=can_preempt,
    )


def _classed(snapshot: Snapshot) -> bool:
    """Whether any pending or running job has a priority class other than the default."""
    if snapshot.classed_jobs is not None:
        return snapshot.classed_jobs > 0
    return any(p.job.priority_class != DEFAULT_CLASS for p in snapshot.pending) or any(
        r.job.priority_class != DEFAULT_CLASS for r in snapshot.running.values()
    )


def _order(cycle: _Cycle) -> Iterable[PendingJob]:
    """Phase 1b: the policy's order; with priority classes in play, by class first (a stable sort,
    so the policy's order holds within each class)."""
    ordered = cycle.config.ordering.order(cycle.snapshot, cycle.now)
    classes = cycle.classes
    if classes is None:
        return ordered
    return sorted(ordered, key=lambda p: -classes.of(p.job.priority_class).priority)


def _evict(cycle: _Cycle) -> None:
    """Phase 1: stop the running jobs a stage requires stopped (e.g. a cap fell below the draw)."""
    capacity = cycle.snapshot.capacity
    for stage in cycle.stages:
        for victim, reason in stage.evictions():
            if victim.job.id in cycle.displaced:
                continue
            capacity.give(victim.placement)
            cycle.displaced.add(victim.job.id)
            cycle.preemptions.append(Preemption(victim.job.id, 0, reason))
            for other in cycle.stages:
                other.preempted(victim)


def _start_held(cycle: _Cycle) -> None:
    """Phase 1b: the jobs a fence lets start out of turn (a reservation's own jobs during its window),
    each placed only on the nodes held for it, after the stages admit it. One that does not fit there
    or is refused takes its turn in the scan like any job."""
    assert cycle.fence is not None
    capacity = cycle.snapshot.capacity
    cluster = cycle.snapshot.cluster
    for nodes, jobs in cycle.fence.held_for():
        if not jobs:
            continue
        held = set(nodes)
        outside = [n.index for n in cluster.nodes if n.index not in held and capacity.is_up(n.index)]
        for node in outside:
            capacity.set_up(node, False)
        for pending in jobs:
            if pending.job.id in cycle.started_early or _filter(pending.job, cluster) is not None:
                continue
            verdict = _admit(pending, cycle) if cycle.admitting else None
            if isinstance(verdict, PendingReason):
                continue
            job, borrowing = (pending.job, False) if verdict is None else verdict
            placement, _ = place_in(cycle, job)
            if placement is not None:
                cycle.started_early.add(pending.job.id)
                _record_start(cycle, pending, Start(job, placement, borrowing))
        for node in outside:
            capacity.set_up(node, True)


_filter = never_fits_reason
"""Phase 2a: a reason when no pool the job accepts could ever hold it (``shapes.never_fits_reason``,
called directly: it runs for every job of a long queue)."""


def _admit(pending: PendingJob, cycle: _Cycle) -> Admitted | PendingReason | None:
    """Phase 2b: the stages in order; the first refusal wins. ``None``: admitted as submitted."""
    admitted: Admitted | None = None
    for stage in cycle.admitting:
        verdict = stage.admit(pending, admitted)
        if verdict is None:
            continue
        if isinstance(verdict, PendingReason):
            return verdict
        if verdict is BORROWS:
            admitted = Admitted(pending.job if admitted is None else admitted.job, True)
        else:
            admitted = verdict  # type: ignore[assignment]  # an Admitted: the only other answer
    if admitted is not None and admitted.job is not pending.job:
        reason = _filter(admitted.job, cycle.snapshot.cluster)  # a narrowed job may fit nowhere now
        if reason is not None:
            return reason
    return admitted


def _scan(cycle: _Cycle, ordered: Iterable[PendingJob]) -> PendingReason | None:
    """Phases 2 and 3: consider jobs in order until nothing more can start; returns the reason the
    unexamined rest waits (``None`` if every job was examined). Jobs that can never fit, or that a
    stage refuses, get their own reason and count toward neither limit."""
    capacity = cycle.snapshot.capacity
    cluster = cycle.snapshot.cluster
    limit = cycle.config.scan_limit
    can_preempt = cycle.can_preempt
    fractional_possible = cycle.snapshot.pending_fractional != 0
    gate = cycle.gate
    now = cycle.now
    waiting = cycle.pending
    staged = bool(cycle.admitting)
    # One stage (the common case: quota alone) is called directly, without the ``_admit`` loop.
    only = cycle.admitting[0].admit if len(cycle.admitting) == 1 else None
    examined = 0
    full_limit = cycle.config.full_scan_limit
    examined_full = 0
    never_fits, consider = _filter, _consider  # locals: the loop below runs for every queued job
    # Where the gate lets all through, a job whose shape (as the stages admitted it) already failed in
    # its preemption scope fails alike (``_consider``'s cache) and takes that reason at once: most of
    # a saturated queue stops here.
    failed = cycle.failed if cycle.classes is None and gate.passes_all else None
    preemptor = cycle.config.preemptor
    scope_of = None if preemptor is None else preemptor.scope_key
    fencing = cycle.fence
    for pending in ordered:
        full = capacity.free_total == 0
        if full and not can_preempt:
            if not fractional_possible:
                return NO_CAPACITY
            if needs_whole_gpus(pending.job):
                waiting.append((pending.job.id, NO_CAPACITY))
                continue
        # Cheap rejections first: most of a long queue stops here.
        reason = never_fits(pending.job, cluster)
        job, borrowing = pending.job, False
        if reason is None and staged:
            verdict = _admit(pending, cycle) if only is None else only(pending, None)
            if verdict is None:
                pass
            elif verdict is BORROWS:
                borrowing = True
            elif isinstance(verdict, PendingReason):
                reason = verdict
                if verdict.code in CAPACITY_CODES:  # no room now, like a placement that failed
                    if examined >= limit:
                        return PendingReason(
                            "not-examined", f"beyond the first {limit} jobs examined this cycle"
                        )
                    examined += 1
            else:
                job, borrowing = verdict  # type: ignore[misc]  # an Admitted
                if only is not None and job is not pending.job:
                    reason = _filter(job, cluster)  # a narrowed job may fit nowhere now
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
            if failed:
                reason = failed.get((job.shape, None if scope_of is None else scope_of(pending, borrowing)))
                if reason is None and fencing is not None:
                    reason = _failed_fenced(failed, fencing, pending, job, scope_of, borrowing)
            if reason is None:
                reason = gate.check(pending, now)
        if reason is not None:
            waiting.append((pending.job.id, reason))
        elif not consider(cycle, pending, job, borrowing):
            closed = gate.closed()
            if closed is not None:
                return closed
    return None


def _failed_fenced(
    failed: dict[Hashable, PendingReason],
    fencing: NodeFence,
    pending: PendingJob,
    job: Job,
    scope_of: Callable[[PendingJob, bool], Hashable] | None,
    borrowing: bool,
) -> PendingReason | None:
    """The failure, this cycle, of a job of this shape kept off the same nodes (``_consider`` keys
    fenced failures so). A job no fence keeps off sees more room than one a fence does, so its failure
    holds for fenced jobs too: the scan looks that up first, and asks for the fence only on a miss."""
    fence = fencing.fence_for(pending)
    if fence is None:
        return None
    return failed.get((job.shape, None if scope_of is None else scope_of(pending, borrowing), fence.key))


def _consider(cycle: _Cycle, pending: PendingJob, job: Job, borrowing: bool) -> bool:
    """Phases 2d-e for a job the stages and the discipline let through (``job``: as the stages narrowed
    it; ``borrowing``: whether it starts beyond a guarantee); returns whether it starts."""
    preemptor = cycle.config.preemptor
    scope = None if preemptor is None else preemptor.scope_key(pending, borrowing)
    classes = cycle.classes
    if classes is not None:
        scope = (scope, classes.of(job.priority_class).priority)
    key: Hashable = (job.shape, scope)
    reason = cycle.failed.get(key)
    fence = None
    if reason is None and cycle.fence is not None:
        fence = cycle.fence.fence_for(pending)
        if fence is not None:  # kept off some nodes: it fits or fails apart (``_failed_fenced``)
            key = (job.shape, scope, fence.key)
            reason = cycle.failed.get(key)
    if reason is None:
        placement, reason = place(cycle, job, fence)
        if (
            placement is None
            and reason is None
            and (
                preemptor is not None
                or (classes is not None and classes.of(job.priority_class).preempts_lower)
            )
        ):
            placement = place_by_preemption(cycle, pending, Admitted(job, borrowing), scope, fence)
        if placement is not None:
            _record_start(cycle, pending, Start(job, placement, borrowing))
            return True
        if reason is None and fence is not None and cycle.fence is not None:
            reason = cycle.fence.fenced_reason(fence, pending, cycle.snapshot.capacity.free_total)
        if reason is None:
            where = " on sovereign sites" if job.sovereign else ""
            reason = PendingReason("resources", f"no room for {job.gpus} GPU(s){where} now")
        cycle.failed[key] = reason  # a stage's refusal of the placement holds too: draw only grows
    reason = cycle.gate.blocked(pending, reason, cycle.now)
    cycle.pending.append((pending.job.id, reason))
    return False


def _record_start(cycle: _Cycle, pending: PendingJob, start: Start) -> None:
    """Phase 2e: book a start with every stage (which may annotate it) and with the discipline."""
    for stage in cycle.stages:
        start = stage.started(start)
    cycle.starts.append(start)
    cycle.gate.started(pending, cycle.now)
