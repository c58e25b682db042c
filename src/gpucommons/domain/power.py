"""How much power a site draws, and how much it may draw: the model the ``power`` admission stage,
the simulator's power monitor and the live ``/metrics`` all use (design note 0006).

Projected draw of a site, in watts::

    draw_w = pue * (sum over busy devices of device_w * share + sum over busy nodes of node_base_w)

- ``device_w = tdp_w * device_utilization``: a busy accelerator averages this fraction of its TDP.
  The default 0.8 puts a busy DGX H100 (8 x 700 W) at 4.5 kW of GPU power; with the node base below
  the system draws 7.3 kW, inside NVIDIA's typical 6.5-8.5 kW (DOMAIN-FACTS 1b, [S26][S27]).
- ``share`` is 1 for a whole device and ``gpu_milli / 1000`` for a shared one.
- ``node_base_w``: CPUs, memory, NICs and fans of a node that runs at least one job. A pool may state
  it; otherwise it is ``node_base_fraction`` (default 0.5) of the node's devices' TDP: 2.8 kW for an
  8 x H100 node, 4 kW for 8 x B200 (DGX B200: 14.3 kW max with 8 kW of GPUs, [S8]).
- Idle nodes draw nothing in this model: a site cap limits what *work* may add, and idle power is a
  constant a centre subtracts from its grid contract when it sets the cap.

A site's cap is ``Site.power_cap_mw`` outside its cap windows and the window's ``cap_mw`` inside one
(grid demand response: "6 MW from 14:00 to 18:00 on weekdays"). Windows are read on the run's clock
(seconds since the Unix epoch, UTC) shifted by the site's ``utc_offset_h``; days are 0 = Monday ...
6 = Sunday. Windows of one site never overlap (the cluster file is rejected otherwise), so the cap at
any instant is unambiguous.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

DEVICE_UTILIZATION = 0.8
NODE_BASE_FRACTION = 0.5
SECONDS_PER_DAY = 86_400.0
SECONDS_PER_WEEK = 7 * SECONDS_PER_DAY
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)
WATTS_PER_MW = 1e6


@dataclass(frozen=True, slots=True)
class PowerModel:
    """The two assumptions of the draw formula in the module docstring."""

    device_utilization: float = DEVICE_UTILIZATION
    node_base_fraction: float = NODE_BASE_FRACTION

    def device_w(self, tdp_w: float) -> float:
        return tdp_w * self.device_utilization

    def node_base_w(self, tdp_w: float, devices: int, stated_w: float | None = None) -> float:
        return stated_w if stated_w is not None else self.node_base_fraction * tdp_w * devices


@dataclass(frozen=True, slots=True)
class CapWindow:
    """A weekly window during which a site's cap is ``cap_mw``: on ``days`` (0 = Monday), from
    ``start_min`` to ``end_min`` minutes after local midnight (``end_min`` > ``start_min``)."""

    days: frozenset[int]
    start_min: int
    end_min: int
    cap_mw: float

    def spans_s(self) -> list[tuple[float, float]]:
        """The window's stretches within one local week, in seconds after Monday 00:00."""
        return [
            (d * SECONDS_PER_DAY + self.start_min * 60.0, d * SECONDS_PER_DAY + self.end_min * 60.0)
            for d in sorted(self.days)
        ]


def windows_overlap(windows: tuple[CapWindow, ...]) -> tuple[CapWindow, CapWindow] | None:
    """The first two windows that overlap in the week, or ``None``."""
    spans = sorted((a, b, i) for i, w in enumerate(windows) for a, b in w.spans_s())
    for (_, b1, i), (a2, _, j) in itertools.pairwise(spans):
        if a2 < b1:
            return windows[i], windows[j]
    return None


@dataclass(frozen=True, slots=True)
class CapSchedule:
    """A site's cap over time: ``base_mw`` (``None``: uncapped) outside ``windows``."""

    base_mw: float | None
    windows: tuple[CapWindow, ...] = ()
    utc_offset_h: float = 0.0

    @property
    def capped(self) -> bool:
        return self.base_mw is not None or bool(self.windows)

    def _week_s(self, t_s: float) -> float:
        local = t_s + self.utc_offset_h * 3600.0
        return (local + EPOCH_WEEKDAY * SECONDS_PER_DAY) % SECONDS_PER_WEEK

    def cap_w_at(self, t_s: float) -> float:
        """The cap in watts at ``t_s`` (``inf`` when uncapped)."""
        week_s = self._week_s(t_s)
        for window in self.windows:
            for a, b in window.spans_s():
                if a <= week_s < b:
                    return window.cap_mw * WATTS_PER_MW
        return math.inf if self.base_mw is None else self.base_mw * WATTS_PER_MW

    def next_change_s(self, t_s: float) -> float | None:
        """The first instant after ``t_s`` at which the cap may change (a window opens or closes)."""
        if not self.windows:
            return None
        week_s = self._week_s(t_s)
        edges = sorted({e for w in self.windows for span in w.spans_s() for e in span})
        later = [e for e in edges if e > week_s]
        step = (later[0] - week_s) if later else (SECONDS_PER_WEEK - week_s + edges[0])
        return t_s + step
