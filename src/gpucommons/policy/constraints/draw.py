"""Per-site projected power draw, kept incrementally as placements start and stop.

One class serves the ``power`` admission stage (what a start would add), the simulator's power monitor
(the series a replay reports) and the live ``/metrics``, so all three compute the same figure from the
formula in ``domain/power.py``.
"""

from __future__ import annotations

from collections.abc import Iterable

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Placement
from gpucommons.domain.power import PowerModel

MILLI = 1000


class SiteDraw:
    """Projected draw per site in watts (PUE included) of a set of placements."""

    def __init__(self, cluster: Cluster, model: PowerModel, placements: Iterable[Placement] = ()) -> None:
        self.cluster = cluster
        self.model = model
        site_of_pool = {p.name: p.site for p in cluster.pools}
        pue = {s.name: s.pue for s in cluster.sites}
        pools = cluster.pool_by_name
        self._site: list[str] = [site_of_pool[n.pool] for n in cluster.nodes]
        # Per node: watts one whole busy device adds, and watts the node adds once busy (PUE included).
        self._device_w: list[float] = []
        self._base_w: list[float] = []
        for n in cluster.nodes:
            pool = pools[n.pool]
            factor = pue[pool.site]
            tdp = pool.model.tdp_w
            self._device_w.append(factor * model.device_w(tdp))
            self._base_w.append(factor * model.node_base_w(tdp, pool.gpus_per_node, pool.node_base_w))
        self._jobs_on: list[int] = [0] * len(cluster.nodes)
        self.changes = 0  # add/remove calls so far: a reader can tell the draw has not moved
        self.site_w: dict[str, float] = {s.name: 0.0 for s in cluster.sites}
        for placement in placements:
            self.add(placement)

    def _walk(self, placement: Placement, step: int) -> tuple[str, float]:
        """The site of a placement and the watts it accounts for there, moving each of its nodes' job
        count by ``step`` (+1 add, -1 remove, 0 only measure). A node's base power counts when the
        placement makes it busy (it held no job before) or idle (it holds none after)."""
        share = placement.milli / MILLI
        jobs_on = self._jobs_on
        site = ""
        watts = 0.0
        for node, gpus in placement.node_gpus:
            site = self._site[node]
            watts += self._device_w[node] * share * len(gpus)
            before = jobs_on[node]
            if (before if step >= 0 else before + step) == 0:
                watts += self._base_w[node]
            jobs_on[node] = before + step
        return site, watts

    def delta_w(self, placement: Placement) -> tuple[str, float]:
        """The site a placement is on and the watts it would add there (placements never span sites:
        a job's nodes come from one pool)."""
        return self._walk(placement, 0)

    def add(self, placement: Placement) -> float:
        """Count a placement as running; returns the watts it added."""
        self.changes += 1
        site, watts = self._walk(placement, 1)
        if site:
            self.site_w[site] += watts
        return watts

    def remove(self, placement: Placement) -> None:
        """Stop counting a placement (the exact inverse of ``add``)."""
        self.changes += 1
        site, watts = self._walk(placement, -1)
        if site:
            left = self.site_w[site] - watts
            self.site_w[site] = left if abs(left) > 1e-6 else 0.0  # float residue of add/remove pairs

    def copy(self) -> SiteDraw:
        """An independent copy (the power stage tallies a cycle's trial starts on one)."""
        other = SiteDraw.__new__(SiteDraw)
        other.cluster, other.model = self.cluster, self.model
        other._site, other._device_w, other._base_w = self._site, self._device_w, self._base_w
        other._jobs_on = list(self._jobs_on)
        other.changes = self.changes
        other.site_w = dict(self.site_w)
        return other

    def site_of(self, placement: Placement) -> str:
        return self._site[placement.node_gpus[0][0]] if placement.node_gpus else ""
