"""The replay's power monitor: each site's projected draw as a step function of time, its energy, and
every instant it stood above its cap.

The runner calls ``observe`` after every event (arrivals, finishes, cap changes) once the cycle's
decisions are applied; the draw then holds until the next call. Energy is the exact integral of that
step function, so ``energy_kwh`` equals the sum over segments of device and node power times PUE.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gpucommons.domain.cluster import Cluster

J_PER_KWH = 3.6e6


@dataclass(frozen=True, slots=True)
class Breach:
    """A moment a site drew more than its cap (the property tests fail on the first)."""

    t_s: float
    site: str
    draw_w: float
    cap_w: float


@dataclass
class PowerMonitor:
    cluster: Cluster
    times_s: list[float] = field(default_factory=list)
    site_w: dict[str, list[float]] = field(default_factory=dict)
    energy_j: dict[str, float] = field(default_factory=dict)
    peak_w: dict[str, float] = field(default_factory=dict)
    breaches: list[Breach] = field(default_factory=list)
    _last: dict[str, float] = field(default_factory=dict)
    _last_t: float | None = None

    def __post_init__(self) -> None:
        for site in self.cluster.sites:
            self.site_w[site.name] = []
            self.energy_j[site.name] = 0.0
            self.peak_w[site.name] = 0.0
            self._last[site.name] = 0.0
        self._schedules = {s.name: s.cap_schedule for s in self.cluster.sites}

    def observe(self, t_s: float, draw_w: Mapping[str, float]) -> None:
        """The draw from ``t_s`` on (until the next call)."""
        if self._last_t is not None:
            dt = t_s - self._last_t
            for site, w in self._last.items():
                self.energy_j[site] += w * dt
        self._last_t = t_s
        changed = not self.times_s
        for site, w in draw_w.items():
            if w != self._last[site]:
                changed = True
            self._last[site] = w
            if w > self.peak_w[site]:
                self.peak_w[site] = w
            schedule = self._schedules[site]
            if schedule.capped:
                cap = schedule.cap_w_at(t_s)
                if w > cap * (1 + 1e-9):
                    self.breaches.append(Breach(t_s, site, w, cap))
        if changed:
            self.times_s.append(t_s)
            for site, w in draw_w.items():
                self.site_w[site].append(w)

    def energy_kwh(self) -> dict[str, float]:
        return {site: j / J_PER_KWH for site, j in self.energy_j.items()}
