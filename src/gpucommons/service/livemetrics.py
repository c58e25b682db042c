"""Prometheus metrics of the live system: jobs by state, pending jobs by reason, GPUs per pool, drained
nodes, the scheduler's cycle duration and submissions.

Job and GPU gauges are read from the database when ``/metrics`` is scraped, not kept in memory, so they
are right whichever process (this server, another worker, ``gpuc scheduler``) changed the rows, and a
scrape every few seconds costs four small queries. The cycle histogram is observed by the scheduler
loop when it runs in this process; the submissions counter counts new jobs this process accepted.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gpucommons.domain.cluster import Cluster
from gpucommons.store.jobs import JOB_STATES, AllocationRow, JobRow
from gpucommons.store.nodes import drained_nodes

# Scheduling cycles take milliseconds when the queue is short and seconds when it is very long.
CYCLE_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class LiveCollector(Collector):
    """Gauges computed from the job and allocation tables at scrape time."""

    def __init__(self, sessions: sessionmaker[Session], cluster: Callable[[], Cluster]) -> None:
        self.sessions = sessions
        self.cluster = cluster

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.sessions() as session:
            by_state = dict.fromkeys(JOB_STATES, 0)
            for state, count in session.execute(select(JobRow.state, func.count()).group_by(JobRow.state)):
                by_state[state] = int(count)
            by_reason = session.execute(
                select(JobRow.reason_code, func.count())
                .where(JobRow.state == "pending")
                .group_by(JobRow.reason_code)
            )
            pending = {str(code or "none"): int(count) for code, count in by_reason}
            per_node = session.execute(
                select(AllocationRow.node_name, func.count()).group_by(AllocationRow.node_name)
            )
            allocated_by_node = {name: int(count) for name, count in per_node}
            drained = drained_nodes(session)
        jobs = GaugeMetricFamily("gpuc_jobs", "Jobs by state", labels=["state"])
        for state, count in by_state.items():
            jobs.add_metric([state], count)
        yield jobs
        reasons = GaugeMetricFamily("gpuc_pending_jobs", "Pending jobs by reason code", labels=["reason"])
        for code, count in sorted(pending.items()):
            reasons.add_metric([code], count)
        yield reasons
        yield from self._pools(allocated_by_node)
        out = GaugeMetricFamily("gpuc_drained_nodes", "Nodes an operator drained (no new jobs there)")
        out.add_metric([], len(drained & {n.name for n in self.cluster().nodes}))
        yield out

    def _pools(self, allocated_by_node: dict[str, int]) -> Iterator[GaugeMetricFamily]:
        cluster = self.cluster()
        allocated = {p.name: 0 for p in cluster.pools}
        total = {p.name: 0 for p in cluster.pools}
        for node in cluster.nodes:
            total[node.pool] += node.gpus
            allocated[node.pool] += allocated_by_node.get(node.name, 0)
        busy = GaugeMetricFamily("gpuc_pool_gpus_allocated", "GPUs held by running jobs", labels=["pool"])
        free = GaugeMetricFamily("gpuc_pool_gpus_free", "GPUs not held by any job", labels=["pool"])
        for pool in total:
            busy.add_metric([pool], allocated[pool])
            free.add_metric([pool], total[pool] - allocated[pool])
        yield busy
        yield free


def submissions_counter(registry: CollectorRegistry) -> Counter:
    return Counter("gpuc_job_submissions", "New jobs accepted by this process", registry=registry)


def cycle_histogram(registry: CollectorRegistry) -> Histogram:
    return Histogram(
        "gpuc_scheduler_cycle_duration_seconds",
        "Wall time of one scheduler step (lease, events, cycle, launches)",
        registry=registry,
        buckets=CYCLE_BUCKETS_S,
    )


def timed(step: Callable[[], Any], histogram: Histogram) -> Callable[[], Any]:
    """``step`` that also records how long each call took, whether it returned or raised."""

    def observed() -> Any:
        started_s = time.perf_counter()
        try:
            return step()
        finally:
            histogram.observe(time.perf_counter() - started_s)

    return observed
