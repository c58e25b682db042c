"""Prometheus metrics of the scheduler's backend, for operators: the events it applied, by kind, the
nodes the backend reports unavailable, and each site's power.

``gpuc_backend_events_total{kind="unknown"}`` counts jobs the backend runs under gpucommons' naming that
no gpucommons job owns (on Slurm: someone else's ``gpuc-<id>`` job, or one left from a lost database);
each also gets a warning in the server log. ``gpuc_site_power_mw{site}`` is the projected draw of the
jobs running after the last cycle (the power stage's formula, ``domain/power.py``; sites appear once a
cycle has run) and ``gpuc_site_power_cap_mw{site}`` each capped site's cap now (its cap window's, if one
is open). Read from the engine at scrape time; the engine runs on
another thread and only ever adds to its counters, and copying a dict is atomic in CPython.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gpucommons.domain.power import WATTS_PER_MW
from gpucommons.engine.live import LiveEngine
from gpucommons.policy.constraints.power import caps_at


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
        yield from self._power()

    def _power(self) -> Iterator[Metric]:
        draw = GaugeMetricFamily(
            "gpuc_site_power_mw",
            "Projected draw of the site's running jobs after the last cycle, PUE included (MW)",
            labels=["site"],
        )
        for site, watts in sorted(self.engine.site_power_w.items()):
            draw.add_metric([site], watts / WATTS_PER_MW)
        yield draw
        cap = GaugeMetricFamily(
            "gpuc_site_power_cap_mw", "The site's power cap now (MW); capped sites only", labels=["site"]
        )
        for site, watts in sorted(caps_at(self.engine.cluster, self.engine.clock()).items()):
            cap.add_metric([site], watts / WATTS_PER_MW)
        yield cap


def install_backend_metrics(registry: CollectorRegistry, engine: LiveEngine) -> None:
    registry.register(BackendCollector(engine))
