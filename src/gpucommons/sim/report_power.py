"""What a replay drew from the grid: energy, carbon, cost, peak and average power per site, the
``power.csv`` time series and each site's cap over the run.

Every figure comes from the run's ``PowerMonitor``: it integrates each site's projected draw (PUE
included, ``domain/power.py``) as a step function of time, so the energy here is the same number the
``power`` admission stage and the live ``/metrics`` would compute for the same placements.

- ``energy_kwh_by_site``: the monitor's integral; ``energy_kwh`` their sum.
- ``co2_kg``: each site's energy times its ``carbon_g_per_kwh``.
- ``cost_krw``: each site's energy times its ``price_krw_per_kwh``, summed, rounded to whole won.
- ``peak_site_power_mw``: the highest draw each site reached. ``avg_site_power_mw``: its energy over the
  run's makespan (first arrival to last event), so idle stretches count as zero draw.

``power.csv`` has one row ``t_s,site,power_mw`` per change of a site's draw (and the run's first
instant). A long replay changes its draw at almost every event, so a site with more than
``MAX_POWER_ROWS_PER_SITE`` changes is downsampled: the run is cut into that many equal intervals and each
interval keeps one row, at its start, with the highest draw the site reached in it (the draw carried in
from before counts); consecutive rows with the same value are merged. The downsampled series is an upper
envelope: it never hides a peak (its maximum is ``peak_site_power_mw``), at the price of showing a brief
dip as no dip at all.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpucommons.domain.power import WATTS_PER_MW, CapSchedule
from gpucommons.sim.monitor import PowerMonitor
from gpucommons.sim.runner import SimResult

MAX_POWER_ROWS_PER_SITE = 20_000
GRAMS_PER_KG = 1000.0


def power_figures(result: SimResult) -> dict[str, Any]:
    """The run's energy, carbon, cost and per-site power, for summary.json."""
    monitor = result.power
    by_site_kwh = monitor.energy_kwh()
    sites = result.cluster.site_by_name
    makespan_s = result.end_s - result.start_s
    co2_kg = sum(kwh * sites[name].carbon_g_per_kwh for name, kwh in by_site_kwh.items()) / GRAMS_PER_KG
    cost_krw = sum(kwh * sites[name].price_krw_per_kwh for name, kwh in by_site_kwh.items())
    return {
        "energy_kwh": sum(by_site_kwh.values()),
        "energy_kwh_by_site": by_site_kwh,
        "co2_kg": co2_kg,
        "cost_krw": round(cost_krw),
        "peak_site_power_mw": {name: w / WATTS_PER_MW for name, w in monitor.peak_w.items()},
        "avg_site_power_mw": {
            name: (j / makespan_s / WATTS_PER_MW if makespan_s > 0 else 0.0)
            for name, j in monitor.energy_j.items()
        },
    }


def site_series(
    monitor: PowerMonitor, site: str, max_rows: int = MAX_POWER_ROWS_PER_SITE
) -> tuple[list[float], list[float]]:
    """(times in s, draw in W) of one site at each change of its draw, downsampled as the module says."""
    times_s = np.asarray(monitor.times_s, dtype=np.float64)
    watts = np.asarray(monitor.site_w[site], dtype=np.float64)
    if len(watts) == 0:
        return [], []
    changed = np.ones(len(watts), dtype=bool)
    changed[1:] = watts[1:] != watts[:-1]
    t, w = times_s[changed], watts[changed]
    if len(t) <= max_rows:
        return t.tolist(), w.tolist()
    edges = np.linspace(times_s[0], times_s[-1], max_rows + 1)[:-1]  # each interval's start
    first = np.searchsorted(t, edges, side="left")  # the first change inside each interval
    ends = np.append(first[1:], len(t))
    inside = np.full(max_rows, -np.inf)
    nonempty = first < ends
    if nonempty.any():
        inside[nonempty] = np.maximum.reduceat(w, first[nonempty])
    # The draw in force as an interval opens, unless a change lands exactly on its start.
    carried = np.where(first > 0, w[np.maximum(first - 1, 0)], -np.inf)
    starts_on_change = (first < len(t)) & (t[np.minimum(first, len(t) - 1)] == edges)
    carried[starts_on_change] = -np.inf
    peak = np.maximum(inside, carried)
    keep = np.ones(max_rows, dtype=bool)
    keep[1:] = peak[1:] != peak[:-1]
    return edges[keep].tolist(), peak[keep].tolist()


def power_rows(
    monitor: PowerMonitor, max_rows_per_site: int = MAX_POWER_ROWS_PER_SITE
) -> list[dict[str, Any]]:
    """``power.csv``: rows ``t_s, site, power_mw`` in time order, sites in cluster order within a time."""
    rows: list[tuple[float, int, str, float]] = []
    for order, site in enumerate(s.name for s in monitor.cluster.sites):
        times_s, watts = site_series(monitor, site, max_rows_per_site)
        rows.extend((t, order, site, w / WATTS_PER_MW) for t, w in zip(times_s, watts, strict=True))
    rows.sort(key=lambda row: (row[0], row[1]))
    return [{"t_s": t, "site": site, "power_mw": mw} for t, _, site, mw in rows]


def cap_steps_mw(schedule: CapSchedule, start_s: float, end_s: float) -> tuple[list[float], list[float]]:
    """A site's cap over ``[start_s, end_s]`` as a step series (times in s, cap in MW; ``inf`` where
    uncapped), one point per window edge, ending with a point at ``end_s`` so a plot spans the run."""
    times_s: list[float] = []
    caps_mw: list[float] = []
    t = start_s
    while True:
        times_s.append(t)
        caps_mw.append(schedule.cap_w_at(t) / WATTS_PER_MW)
        following = schedule.next_change_s(t)
        if following is None or following >= end_s:
            break
        t = following
    if end_s > times_s[-1]:
        times_s.append(end_s)
        caps_mw.append(caps_mw[-1])
    return times_s, caps_mw
