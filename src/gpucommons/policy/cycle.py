"""``schedule()``: one scheduling cycle, in named phases.

0. ``_open``: open the discipline's gate and each admission stage's gate for this cycle.
1. ``_evict``: stop what a stage requires stopped before anything starts (a site cap that fell).
2. ``_scan``: walk the queue in the policy's order (``Ordering``); for each job:
   a. ``_filter``: reject shapes that can never fit (``never-fits``, ``residency``);
   b. ``_admit``: the stages in order (award, residency, gangs, array limit, quota, power) may refuse
      the job or narrow it (models, sites, gang shape) and say whether it borrows. A job refused here
      for who it is (no award, budget, array limit, quota), or by the filter, counts toward no scan
      limit: a pile of unfunded jobs cannot hide a funded one. A refusal for lack of capacity now
      (``power``) counts, as a placement that failed does, so a site at its cap does not make every
      cycle scan the whole queue;
   c. ask the queue discipline whether the job may start out of turn (strict line / backfill);
   d. ``_place``: place it; each stage must ``accept`` the placement (power); if it does not fit and
      the policy preempts, ``_place_by_preemption`` tries displacing candidate victims;
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

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

from gpucommons.domain.job import Job, Placement
from gpucommons.policy.capacity import MILLI, Capacity
from gpucommons.policy.decisions import CAPACITY_CODES, CycleResult, PendingReason, Preemption, Start
from gpucommons.policy.placement.shapes import never_fits_reason
from gpucommons.policy.priority import DEFAULT_CLASS, PriorityClasses
from gpucommons.policy.protocols import BORROWS, Admitted, Gate, PolicyConfig, SitePreference, StageGate
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot

NO_CAPACITY = PendingReason("not-examined", "no free accelerators left in this cycle")


@dataclass(slots=True)
class _Cycle:
    snapshot: Snapshot
    config: PolicyConfig
    now: float
    gate: Gate
    stages: tuple[StageGate, ...]
    checking: tuple[StageGate, ...] = ()  # the stages whose ``accept`` can refuse a placement
    classes: PriorityClasses | None = None  # ``None``: every job is of the default class
    siting: SitePreference | None = None  # the gate that orders the sites a job may use, if any
    can_preempt: bool = False  # a preemptor, or a class that preempts lower ones
    starts: list[Start] = field(default_factory=list)
    preemptions: list[Preemption] = field(default_factory=list)
    pending: list[tuple[int, PendingReason]] = field(default_factory=list)
    displaced: set[int] = field(default_factory=set)
    failed: dict[Hashable, PendingReason] = field(default_factory=dict)
    candidates: dict[Hashable, Sequence[RunningJob]] = field(default_factory=dict)


def _needs_whole_gpus(job: Job) -> bool:
    return job.gpus > 0 and not job.shared


def schedule(snapshot: Snapshot, config: PolicyConfig, now: float) -> CycleResult:
    """Decide which pending jobs start where, and which running jobs are preempted, at time ``now``."""
    capacity = snapshot.capacity
    with capacity.what_if():
        cycle = _open(snapshot, config, now)
        if cycle.stages:
            _evict(cycle)
        if capacity.free_total == 0 and not cycle.can_preempt and snapshot.pending_fractional == 0:
            others: PendingReason | None = NO_CAPACITY  # nothing can start: skip ordering the queue
        else:
            others = _scan(cycle, _order(cycle))
    return CycleResult(tuple(cycle.starts), tuple(cycle.preemptions), tuple(cycle.pending), others)


def _open(snapshot: Snapshot, config: PolicyConfig, now: float) -> _Cycle:
    """Phase 0: each piece's per-cycle state; stages with nothing to check this cycle drop out."""
    gates: list[StageGate] = []
    for stage in config.stages:
        gate = stage.open(snapshot, now)
        if gate is not None:
            gates.append(gate)
    checking = tuple(g for g in gates if g.checks_placements) if gates else ()
    classes = config.priority_classes if _classed(snapshot) else None
    can_preempt = config.preemptor is not None or (classes is not None and classes.any_preempts)
    # ``hasattr``, not ``isinstance`` on the runtime-checkable protocol: that costs microseconds per
    # gate, and this runs every cycle.
    siting = (
        next((cast(SitePreference, g) for g in gates if hasattr(g, "site_order")), None) if gates else None
    )
    return _Cycle(
        snapshot,
        config,
        now,
        config.discipline.open(snapshot, now),
        tuple(gates),
        checking,
        classes=classes,
        siting=siting,
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


_filter = never_fits_reason
"""Phase 2a: a reason when no pool the job accepts could ever hold it (``shapes.never_fits_reason``,
called directly: it runs for every job of a long queue)."""


def _admit(pending: PendingJob, cycle: _Cycle) -> Admitted | PendingReason | None:
    """Phase 2b: the stages in order; the first refusal wins. ``None``: admitted as submitted."""
    admitted: Admitted | None = None
    for stage in cycle.stages:
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
    staged = bool(cycle.stages)
    # One stage (the common case: quota alone) is called directly, without the ``_admit`` loop.
    only = cycle.stages[0].admit if len(cycle.stages) == 1 else None
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
    for pending in ordered:
        full = capacity.free_total == 0
        if full and not can_preempt:
            if not fractional_possible:
                return NO_CAPACITY
            if _needs_whole_gpus(pending.job):
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
            if reason is None:
                reason = gate.check(pending, now)
        if reason is not None:
            waiting.append((pending.job.id, reason))
        elif not consider(cycle, pending, job, borrowing):
            closed = gate.closed()
            if closed is not None:
                return closed
    return None


def _consider(cycle: _Cycle, pending: PendingJob, job: Job, borrowing: bool) -> bool:
    """Phases 2d-e for a job the stages and the discipline let through (``job``: as the stages narrowed
    it; ``borrowing``: whether it starts beyond a guarantee); returns whether it starts."""
    preemptor = cycle.config.preemptor
    scope = None if preemptor is None else preemptor.scope_key(pending, borrowing)
    classes = cycle.classes
    if classes is not None:
        scope = (scope, classes.of(job.priority_class).priority)
    key = (job.shape, scope)
    reason = cycle.failed.get(key)
    if reason is None:
        placement, reason = _place(cycle, job)
        if (
            placement is None
            and reason is None
            and (
                preemptor is not None
                or (classes is not None and classes.of(job.priority_class).preempts_lower)
            )
        ):
            placement = _place_by_preemption(cycle, pending, Admitted(job, borrowing), scope)
        if placement is not None:
            _record_start(cycle, pending, Start(job, placement, borrowing))
            return True
        if reason is None:
            where = " on sovereign sites" if job.sovereign else ""
            reason = PendingReason("resources", f"no room for {job.gpus} GPU(s){where} now")
        cycle.failed[key] = reason  # a stage's refusal of the placement holds too: draw only grows
    reason = cycle.gate.blocked(pending, reason, cycle.now)
    cycle.pending.append((pending.job.id, reason))
    return False


def _accepts(
    cycle: _Cycle, job: Job, placement: Placement, victims: Sequence[RunningJob] = ()
) -> PendingReason | None:
    for stage in cycle.checking:
        reason = stage.accept(job, placement, victims)
        if reason is not None:
            return reason
    return None


def _place(cycle: _Cycle, job: Job) -> tuple[Placement | None, PendingReason | None]:
    """Phase 2d: a placement every stage accepts (kept allocated), or why there is none: ``(None,
    None)`` when it did not fit, ``(None, reason)`` when a stage refused the placement found. A job
    several sites could take tries them in the siting gate's order; the first that takes it wins."""
    if cycle.siting is not None:
        order = cycle.siting.site_order(job)
        if len(order) > 1:
            return _place_by_site(cycle, job, order)
    return _place_in(cycle, job)


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
        placement, reason = _place_in(cycle, narrowed)
        if placement is None:
            refused = refused or reason
            continue
        if not _wakes_a_node(capacity, placement):
            return placement, None
        capacity.rollback(mark)
        waking = waking or narrowed
    if waking is not None:
        return _place_in(cycle, waking)  # the same state as when it was found: the same placement
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


def _place_in(cycle: _Cycle, job: Job) -> tuple[Placement | None, PendingReason | None]:
    capacity = cycle.snapshot.capacity
    if not cycle.checking:
        return cycle.config.placer.place(job, capacity), None
    mark = capacity.mark()
    placement = cycle.config.placer.place(job, capacity)
    if placement is None:
        return None, None
    refused = _accepts(cycle, job, placement)
    if refused is not None:
        capacity.rollback(mark)
        return None, refused
    return placement, None


def _record_start(cycle: _Cycle, pending: PendingJob, start: Start) -> None:
    """Phase 2e: book a start with every stage (which may annotate it) and with the discipline."""
    for stage in cycle.stages:
        start = stage.started(start)
    cycle.starts.append(start)
    cycle.gate.started(pending, cycle.now)


def _place_by_preemption(
    cycle: _Cycle, pending: PendingJob, admitted: Admitted, scope: Hashable
) -> Placement | None:
    """Release candidate victims one at a time until the job fits; undo everything if it never does."""
    capacity: Capacity = cycle.snapshot.capacity
    job = admitted.job
    scoped = cycle.candidates.get(scope)
    if scoped is None:
        scoped = cycle.candidates[scope] = _candidates(cycle, pending, admitted.borrowing)
    candidates = [r for r in scoped if r.job.id not in cycle.displaced]
    if not candidates:
        return None
    mark = capacity.mark()
    victims = []
    for victim in candidates:
        capacity.give(victim.placement)
        victims.append(victim)
        placement = cycle.config.placer.place(job, capacity)
        if placement is not None:
            needed = _restore_unneeded(capacity, victims, placement)
            if cycle.checking and _accepts(cycle, job, placement, needed) is not None:
                break
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
