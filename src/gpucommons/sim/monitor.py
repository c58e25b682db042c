"""The replay's power monitor: each site's projected draw as a step function of time, its energy, and
every instant it stood above its cap.

The runner calls ``observe`` after every event (arrivals, finishes, cap changes) once the cycle's
decisions are applied; the draw then holds until the next call. ``observe`` only records the draw: the
figures (series, energy, peaks, breaches) are worked out in one vectorised pass the first time one is
read, since a replay observes hundreds of thousands of events and reads the figures once. Energy is the
exact integral of the step function, summed in event order, so ``energy_kwh`` equals the sum over
segments of device and node power times PUE.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from gpucommons.domain.cluster import Cluster

J_PER_KWH = 3.6e6
BREACH_TOLERANCE = 1e-9  # relative: float residue of many add/remove pairs is not a breach


@dataclass(frozen=True, slots=True)
class Breach:
    """A moment a site drew more than its cap (the property tests fail on the first)."""

    t_s: float
    site: str
    draw_w: float
    cap_w: float


class PowerMonitor:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._names = [s.name for s in cluster.sites]
        self._observed_t: list[float] = []
        self._observed_w: list[tuple[float, ...]] = []  # per observation, watts in ``_names`` order
        self._settled = -1  # observations when the figures were last worked out
        self._times_s: list[float] = []
        self._site_w: dict[str, list[float]] = {}
        self._energy_j: dict[str, float] = {}
        self._peak_w: dict[str, float] = {}
        self._breaches: list[Breach] = []

    def observe(self, t_s: float, draw_w: Mapping[str, float]) -> None:
        """The draw from ``t_s`` on (until the next call); ``draw_w`` names every site."""
        self._observed_t.append(t_s)
        self._observed_w.append(tuple(draw_w[name] for name in self._names))

    @property
    def times_s(self) -> list[float]:
        """The instants any site's draw changed (the first observation included)."""
        self._settle()
        return self._times_s

    @property
    def site_w(self) -> dict[str, list[float]]:
        """Each site's draw at each of ``times_s``."""
        self._settle()
        return self._site_w

    @property
    def energy_j(self) -> dict[str, float]:
        self._settle()
        return self._energy_j

    @property
    def peak_w(self) -> dict[str, float]:
        self._settle()
        return self._peak_w

    @property
    def breaches(self) -> list[Breach]:
        """Every observation at which a capped site drew more than its cap then, in time order."""
        self._settle()
        return self._breaches

    def energy_kwh(self) -> dict[str, float]:
        return {site: j / J_PER_KWH for site, j in self.energy_j.items()}

    def _settle(self) -> None:
        if self._settled == len(self._observed_t):
            return
        self._settled = len(self._observed_t)
        t = np.asarray(self._observed_t, dtype=np.float64)
        w = np.asarray(self._observed_w, dtype=np.float64).reshape(len(t), len(self._names))
        changed = np.ones(len(t), dtype=bool)
        if len(t) > 1:
            changed[1:] = (w[1:] != w[:-1]).any(axis=1)
        dt = np.diff(t)
        self._times_s = t[changed].tolist()
        self._site_w, self._energy_j, self._peak_w = {}, {}, {}
        breaches: list[Breach] = []
        for i, site in enumerate(self.cluster.sites):
            column = w[:, i]
            self._site_w[site.name] = column[changed].tolist()
            # A running sum in event order (``cumsum``, not a pairwise ``sum``): the same figure as
            # adding each interval's energy in turn.
            products = column[:-1] * dt
            self._energy_j[site.name] = float(np.cumsum(products)[-1]) if len(products) else 0.0
            self._peak_w[site.name] = max(0.0, float(column.max())) if len(column) else 0.0
            schedule = site.cap_schedule
            if schedule.capped:
                for k in range(len(t)):
                    cap = schedule.cap_w_at(float(t[k]))
                    if column[k] > cap * (1 + BREACH_TOLERANCE):
                        breaches.append(Breach(float(t[k]), site.name, float(column[k]), cap))
        breaches.sort(key=lambda b: b.t_s)  # stable: sites in cluster order within an instant
        self._breaches = breaches
