"""The simulation loop: arrivals and finishes drive ``engine.run_cycle`` on simulated time."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.engine.cycle import run_cycle
from gpucommons.policy.protocols import PolicyConfig
from gpucommons.sim.executor import SimulatedExecutor
from gpucommons.sim.kernel import EventQueue
from gpucommons.sim.monitor import PowerMonitor
from gpucommons.sim.store import InMemoryStore, JobRecord, Segment


@dataclass(frozen=True)
class SimOptions:
    restart_overhead_s: float = 30.0
    usage_half_life_s: float = 7 * 86_400.0
    quota_gpus: Mapping[str, int] | None = None


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


def simulate(
    jobs: Sequence[Job],
    cluster: Cluster,
    config: PolicyConfig,
    options: SimOptions = SimOptions(),
    on_progress: Callable[[int], None] | None = None,
) -> SimResult:
    """Replay ``jobs`` (any order) on ``cluster`` under ``config``; deterministic for the same inputs."""
    arrivals = sorted(jobs, key=lambda j: (j.submit_s, j.id))
    store = InMemoryStore(cluster, options.quota_gpus, options.usage_half_life_s)
    finishes: EventQueue[tuple[int, int]] = EventQueue()
    executor = SimulatedExecutor(finishes, options.restart_overhead_s)
    monitor = PowerMonitor(cluster)
    next_arrival = 0
    start_s = arrivals[0].submit_s if arrivals else 0.0
    now = start_s
    busy_gpu_s = 0.0
    busy_at_last_arrival = 0.0
    last_arrival_s = arrivals[-1].submit_s if arrivals else 0.0
    events = cycles = finished = 0
    while next_arrival < len(arrivals) or len(finishes):
        t_arrival = arrivals[next_arrival].submit_s if next_arrival < len(arrivals) else float("inf")
        t_finish = finishes.peek_time()
        t = t_arrival if t_finish is None else min(t_arrival, t_finish)
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
        if store.pending:
            run_cycle(store, executor, config, t)
            cycles += 1
        monitor.observe(t, store.draw.site_w)
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
    )
