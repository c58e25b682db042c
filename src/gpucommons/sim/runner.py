"""The simulation loop: arrivals and finishes drive ``engine.run_cycle`` on simulated time, and a cycle
that preempted runs again at the same instant, so its victims may start where there is room. A site cap
that changes and a reservation's window that opens or closes are events too."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from gpucommons.domain.award import Award
from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.domain.power import SECONDS_PER_WEEK, PowerModel
from gpucommons.domain.reservation import Reservation
from gpucommons.engine.cycle import run_cycle
from gpucommons.policy.decisions import CycleResult
from gpucommons.policy.protocols import PolicyConfig, WorkloadAware
from gpucommons.sim.executor import SimulatedExecutor
from gpucommons.sim.kernel import EventQueue
from gpucommons.sim.monitor import PowerMonitor
from gpucommons.sim.store import InMemoryStore, JobRecord, Segment


@dataclass(frozen=True)
class SimOptions:
    restart_overhead_s: float = 30.0
    usage_half_life_s: float = 7 * 86_400.0
    quota_gpus: Mapping[str, int] | None = None
    # The commons' inputs (design note 0006): each tenant's awards (for the award stage and, when
    # given, the quotas: the guarantees of its active awards), its institution kind (reports group by
    # it), and the tenants whose jobs must stay on sovereign sites.
    awards: Mapping[str, Sequence[Award]] | None = None
    tenant_kinds: Mapping[str, str] = field(default_factory=dict)
    sovereign_tenants: frozenset[str] = frozenset()
    power_model: PowerModel = field(default_factory=PowerModel)
    # Job arrays' concurrency limits, array id -> most tasks running (jobs name theirs in ``array_id``).
    array_limits: Mapping[int, int] = field(default_factory=dict)
    # Reservations (design note 0016), and whether a preempted job keeps only the work up to its last
    # checkpoint (``SimulatedExecutor.checkpointing``; off: all of it, as replays always have).
    reservations: tuple[Reservation, ...] = ()
    checkpointing: bool = False


@dataclass(frozen=True)
class SimResult:
    records: Sequence[JobRecord]
    total_gpus: int
    busy_gpu_s: float
    busy_gpu_s_arrivals: float  # busy GPU-seconds between the first and the last arrival
    start_s: float
    last_arrival_s: float
    end_s: float
    events: int
    cycles: int
    preemption_loss_gpu_s: float
    cluster: Cluster
    segments: Sequence[Segment]  # every run segment, in the order they ended
    power: PowerMonitor  # each site's projected draw over time, its energy and any cap breach
    # Each tenant's awards at the end of the run, their spend charged (``None``: the run had none).
    awards: Mapping[str, Sequence[Award]] | None = None
    tenant_kinds: Mapping[str, str] = field(default_factory=dict)  # tenant -> institution kind
    reservations: tuple[Reservation, ...] = ()  # the run's reservations, for its reports


class _CapClock:
    """When the next site cap changes (a cap window opens or closes): the replay runs a cycle then, so
    a falling cap can evict and a rising one can start what waited for it."""

    def __init__(self, cluster: Cluster) -> None:
        self._schedules = [s.cap_schedule for s in cluster.sites if s.cap_windows]
        self._next: float | None = None
        self.windowed = bool(self._schedules)

    def next_change_s(self, now: float) -> float | None:
        if not self._schedules:
            return None
        if self._next is None or self._next <= now:
            changes = [c for c in (s.next_change_s(now) for s in self._schedules) if c is not None]
            self._next = min(changes) if changes else None
        return self._next

    def may_unblock(self, store: InMemoryStore, now: float, progress_s: float) -> bool:
        """Whether waiting for cap changes could still start a pending job: there are jobs waiting and
        less than a week of cap changes (one full cycle of every schedule) has passed without any job
        arriving, starting or finishing."""
        return bool(self._schedules) and bool(store.pending) and now - progress_s < SECONDS_PER_WEEK


class _ReservationClock:
    """When a reservation's window next opens or closes: the replay runs a cycle then, so the window's
    first cycle evicts what still runs on its nodes and jobs kept off them start when it closes."""

    def __init__(self, reservations: Sequence[Reservation]) -> None:
        self._reservations = tuple(reservations)
        self._next: float | None = None
        self.active = bool(self._reservations)
        self.stalled = 0  # window edges passed since a job last arrived, started or finished

    def next_change_s(self, now: float) -> float | None:
        if self._next is None or self._next <= now:
            edges = []
            for reservation in self._reservations:
                window = reservation.window_at(now)
                if window is not None:
                    edges.append(window[0] if window[0] > now else window[1])
            self._next = min(edges) if edges else None
        return self._next

    def may_unblock(self, store: InMemoryStore, now: float) -> bool:
        """Whether waiting for window edges could still start a pending job: jobs wait, an edge is to
        come, and fewer edges than every reservation's opening and closing once have passed without
        any job arriving, starting or finishing."""
        return (
            bool(store.pending)
            and self.stalled <= 2 * len(self._reservations)
            and self.next_change_s(now) is not None
        )


def _room_for_a_victim(store: InMemoryStore, result: CycleResult) -> bool:
    """Whether deciding again at once could start one of the jobs ``result`` preempted. On a mixed
    cluster always: a victim may choose another model and displace a slower job there (design note
    0009). On a uniform one only where free capacity could hold it: a whole-GPU job that fits one
    node needs a node with that many free GPUs, a larger one that many free in all; a share or
    CPU-only victim always counts. Otherwise it waits for the next arrival or finish: a cycle at once
    would start none of the victims, and on a saturated uniform replay such cycles cost a fifth of
    its time."""
    if store.cluster.speeds is not None:
        return True
    capacity = store.capacity
    for preemption in result.preemptions:
        job = store.records[preemption.job_id].job
        if job.gpus < 1 or job.gpu_milli < 1000:
            return True
        if job.gpus > capacity.free_total:
            continue
        for pool, spec in enumerate(store.cluster.pools):
            per_node = spec.gpus_per_node
            if job.gpus > per_node or any(
                capacity.nodes_with_free(pool, free) for free in range(job.gpus, per_node + 1)
            ):
                return True
    return False


def simulate(
    jobs: Sequence[Job],
    cluster: Cluster,
    config: PolicyConfig,
    options: SimOptions = SimOptions(),
    on_progress: Callable[[int], None] | None = None,
) -> SimResult:
    """Replay ``jobs`` (any order) on ``cluster`` under ``config``; deterministic for the same inputs."""
    arrivals = sorted(jobs, key=lambda j: (j.submit_s, j.id))
    if isinstance(config.placer, WorkloadAware):
        config.placer.observe_workload(arrivals)  # the trace's mix, known up front (design note 0002)
    store = InMemoryStore(
        cluster,
        options.quota_gpus,
        options.usage_half_life_s,
        options.power_model,
        options.awards,
        options.sovereign_tenants,
        options.array_limits,
        options.reservations,
    )
    caps = _CapClock(cluster)
    windowed = caps.windowed  # read once: the loop below runs per event
    finishes: EventQueue[tuple[int, int]] = EventQueue()
    executor = SimulatedExecutor(finishes, options.restart_overhead_s, cluster, options.checkpointing)
    edges = _ReservationClock(options.reservations)
    reserving = edges.active
    monitor = PowerMonitor(cluster)
    next_arrival = 0
    start_s = arrivals[0].submit_s if arrivals else 0.0
    now = start_s
    busy_gpu_s = 0.0
    busy_at_last_arrival = 0.0
    last_arrival_s = arrivals[-1].submit_s if arrivals else 0.0
    events = cycles = finished = 0
    progress_s = now  # last time a job arrived, started or finished
    seen_changes = -1  # ``store.draw.changes`` at the monitor's last observation
    while (
        next_arrival < len(arrivals)
        or len(finishes)
        or caps.may_unblock(store, now, progress_s)
        or (reserving and edges.may_unblock(store, now))
    ):
        t_arrival = arrivals[next_arrival].submit_s if next_arrival < len(arrivals) else float("inf")
        t_finish = finishes.peek_time()
        t = t_arrival if t_finish is None else min(t_arrival, t_finish)
        cap_change = caps.next_change_s(now) if windowed else None
        if cap_change is not None and cap_change < t:
            t = cap_change
        edge = edges.next_change_s(now) if reserving else None
        if edge is not None and edge < t:
            t = edge
        if now < last_arrival_s:
            busy_at_last_arrival = busy_gpu_s + store.busy_gpus * (min(t, last_arrival_s) - now)
        busy_gpu_s += store.busy_gpus * (t - now)
        now = t
        while next_arrival < len(arrivals) and arrivals[next_arrival].submit_s == t:
            store.submit(arrivals[next_arrival])
            next_arrival += 1
            events += 1
        while finishes.peek_time() == t:
            _, (job_id, version) = finishes.pop()
            events += 1
            if executor.is_current(job_id, version):
                store.finish(job_id, t)
                finished += 1
                if on_progress is not None:
                    on_progress(finished)
        if store.pending or (store.running and t in (cap_change, edge)):
            result = run_cycle(store, executor, config, t)
            cycles += 1
            if result.starts:
                progress_s = t
            # A job preempted in a cycle is requeued after it: decide again at once, as the live
            # service's next cycle would, so it may start on capacity it could use elsewhere. Victims
            # must have run (``min_run_s``), so this ends. Where no victim fits what is free, the
            # cycle again would start nothing new for them; it is skipped.
            while result.preemptions and store.pending and _room_for_a_victim(store, result):
                result = run_cycle(store, executor, config, t)
                cycles += 1
        if t in (t_arrival, t_finish):
            progress_s = t
        if reserving:
            edges.stalled = 0 if progress_s == t else edges.stalled + (t == edge)
        if store.draw.changes != seen_changes or t == cap_change:
            monitor.observe(t, store.draw.site_w)  # the draw holds between calls
            seen_changes = store.draw.changes
    return SimResult(
        records=[store.records[j.id] for j in arrivals],
        total_gpus=cluster.total_gpus,
        busy_gpu_s=busy_gpu_s,
        busy_gpu_s_arrivals=busy_at_last_arrival,
        start_s=start_s,
        last_arrival_s=last_arrival_s,
        end_s=now,
        events=events,
        cycles=cycles,
        preemption_loss_gpu_s=executor.loss_gpu_s,
        cluster=cluster,
        segments=store.segments,
        power=monitor,
        awards=store.awards,
        tenant_kinds=options.tenant_kinds,
        reservations=options.reservations,
    )
