"""Site preference: where a job that several sites could take should go first.

When a job's accepted pools span more than one site, the cycle tries the sites in this order and keeps
the first placement every stage accepts (the placer still packs within the site, so packing quality
within a site is the placer's as before):

1. sites with at least ``HEADROOM_RESERVE`` of their cap free now (an uncapped site always has), before
   sites nearer their cap: a site is not pushed to its limit, where a falling cap (demand response)
   would stop or evict work, while another has room;
2. among those, the least carbon, then the lowest price, per GPU-hour the job would run there: the
   site's grid figures times the power of one busy device of the job's pools there with its share of
   the node's base power (``domain/power.py``), times PUE. A device that draws more, or a site that
   cools worse, costs more energy for the same GPU-hour;
3. then the most headroom (as a share of the cap), then the cluster file's order.

A single-site cluster opens no gate, so the stage costs nothing there. Design note 0006.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.domain.power import PowerModel
from gpucommons.policy.constraints.draw import SiteDraw
from gpucommons.policy.constraints.power import caps_at
from gpucommons.policy.decisions import Start
from gpucommons.policy.placement.shapes import job_pools
from gpucommons.policy.protocols import AdmitOnly, Admitted, Verdict
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot

HEADROOM_RESERVE = 0.10  # share of a site's cap kept free before a cleaner site is passed over for it


@dataclass
class SitingGate(AdmitOnly):
    cluster: Cluster
    caps: dict[str, float]
    draw: SiteDraw | None  # ``None``: no site is capped, headroom plays no part
    _owned: bool = False  # whether ``draw`` is this gate's copy yet (copied at the first change)
    model: PowerModel = field(default_factory=PowerModel)
    _gpu_w: list[float] = field(default_factory=list)  # per pool: watts of one busy GPU-hour, PUE in
    _site_order: dict[str, int] = field(default_factory=dict)
    _orders: dict[tuple[tuple[int, ...], int], tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sites = self.cluster.site_by_name
        for pool in self.cluster.pools:
            tdp = pool.model.tdp_w
            base = self.model.node_base_w(tdp, pool.gpus_per_node, pool.node_base_w) / pool.gpus_per_node
            self._gpu_w.append(sites[pool.site].pue * (self.model.device_w(tdp) + base))
        self._site_order = {s.name: i for i, s in enumerate(self.cluster.sites)}

    def admit(self, pending: PendingJob, admitted: Admitted | None) -> Verdict:
        return admitted

    def site_order(self, job: Job) -> tuple[str, ...]:
        """The sites ``job`` may use, best first (one site or none: nothing to choose)."""
        pools = job_pools(self.cluster, job)
        key = (pools, self.draw.changes if self.draw is not None else 0)
        order = self._orders.get(key)
        if order is None:
            watts: dict[str, float] = {}
            for p in pools:
                site = self.cluster.pools[p].site
                watts[site] = min(watts.get(site, self._gpu_w[p]), self._gpu_w[p])
            order = self._orders[key] = tuple(sorted(watts, key=lambda s: self._rank(s, watts[s])))
        return order

    def _rank(self, name: str, gpu_w: float) -> tuple[bool, float, float, float, int]:
        cap = self.caps.get(name)
        headroom = 1.0 if cap is None or self.draw is None else (cap - self.draw.site_w[name]) / cap
        site = self.cluster.site_by_name[name]
        carbon, price = gpu_w * site.carbon_g_per_kwh, gpu_w * site.price_krw_per_kwh
        return (headroom < HEADROOM_RESERVE, carbon, price, -headroom, self._site_order[name])

    def started(self, start: Start) -> Start:
        if self.draw is not None:
            self._own().add(start.placement)
        return start

    def preempted(self, running: RunningJob) -> None:
        if self.draw is not None:
            self._own().remove(running.placement)

    def _own(self) -> SiteDraw:
        assert self.draw is not None
        if not self._owned:
            self.draw, self._owned = self.draw.copy(), True
        return self.draw

    def evictions(self) -> Sequence[tuple[RunningJob, str]]:
        return ()


@dataclass(frozen=True)
class SitingStage:
    model: PowerModel = field(default_factory=PowerModel)
    name: str = "siting"

    def open(self, snapshot: Snapshot, now: float) -> SitingGate | None:
        cluster = snapshot.cluster
        if len(cluster.sites) < 2:
            return None
        caps = caps_at(cluster, now)
        draw = None
        if caps:
            given = snapshot.site_draw
            if given is not None and given.model == self.model and given.cluster is cluster:
                draw = given  # read-only until this cycle starts or stops something (then copied)
            else:
                draw = SiteDraw(cluster, self.model, (r.placement for r in snapshot.running.values()))
        return SitingGate(cluster, caps, draw, model=self.model)
