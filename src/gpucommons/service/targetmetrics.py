"""Prometheus gauges of the declared targets (design note 0014), computed from the ledger at scrape
time like the job gauges (``livemetrics.py``): per target (labels ``target``, its id, ``name`` and
``kind``) its bound, and for the ``closed`` window (its latest closed period) and the ``current`` one
(the period so far) what it attained, in its unit, and whether that meets the bound (1 or 0; absent
when there is nothing to measure). Targets sharing a grouping, scope and period share one query."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from gpucommons.store.attainment import Figures, attainment, current_period, latest_closed_period
from gpucommons.store.targets import list_targets


class TargetCollector(Collector):
    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime]) -> None:
        self.sessions = sessions
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["target", "name", "kind"]
        threshold = GaugeMetricFamily(
            "gpuc_target_threshold", "A declared target's bound, in its unit", labels=labels
        )
        value = GaugeMetricFamily(
            "gpuc_target_attainment",
            "What a target's group attained, in its unit",
            labels=[*labels, "window"],
        )
        met = GaugeMetricFamily(
            "gpuc_target_met", "1 where a target's bound is met, 0 where missed", labels=[*labels, "window"]
        )
        now = self.clock()
        with self.sessions() as session:
            figures = Figures(session)
            for target in list_targets(session):
                ids = [str(target.id), target.name, target.kind]
                threshold.add_metric(ids, target.threshold)
                for window, period in (
                    ("closed", latest_closed_period(target.every, now)),
                    ("current", current_period(target.every, now)),
                ):
                    result = attainment(figures, target, period)
                    if result.value is not None:
                        value.add_metric([*ids, window], result.value)
                    if result.met is not None:
                        met.add_metric([*ids, window], 1.0 if result.met else 0.0)
        yield threshold
        yield value
        yield met
