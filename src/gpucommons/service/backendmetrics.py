"""Prometheus metrics of the scheduler's backend, for operators: the events it applied, by kind, and
the nodes the backend reports unavailable.

``gpuc_backend_events_total{kind="unknown"}`` counts jobs the backend runs under gpucommons' naming that
no gpucommons job owns (on Slurm: someone else's ``gpuc-<id>`` job, or one left from a lost database);
each also gets a warning in the server log. Read from the engine at scrape time; the engine runs on
another thread and only ever adds to its counters, and copying a dict is atomic in CPython.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gpucommons.engine.live import LiveEngine


class BackendCollector(Collector):
    def __init__(self, engine: LiveEngine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "gpuc_backend_events",
            "Backend events the scheduler applied, by kind (unknown: jobs named like ours that no "
            "gpucommons job owns)",
            labels=["kind"],
        )
        for kind, count in sorted(dict(self.engine.event_counts).items()):
            events.add_metric([kind], count)
        yield events
        yield GaugeMetricFamily(
            "gpuc_backend_unavailable_nodes",
            "Nodes the backend reported down or drained in the last cycle (their GPUs are not scheduled)",
            value=len(self.engine.unavailable_nodes),
        )


def install_backend_metrics(registry: CollectorRegistry, engine: LiveEngine) -> None:
    registry.register(BackendCollector(engine))
