"""The ``power`` stage: a start is admitted only if its site's projected draw stays under the site's
cap at this instant (``domain/power.py`` has the draw formula and cap schedules).

Before placement the stage narrows the job to the sites where even its cheapest possible placement
(its devices at the site's least power-hungry model, no new node) would fit under the cap, so the placer
never picks a site that is already out of headroom while another has room. After placement it checks
the exact figure, new busy nodes included, with any victims' draw taken off. With ``preempt`` a cap that
has fallen below the draw (a demand-response window opening) evicts the site's newest preemptible
jobs, one at a time, until the site is back under its cap.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job, Placement
from gpucommons.domain.power import WATTS_PER_MW, PowerModel
from gpucommons.policy.constraints.draw import SiteDraw
from gpucommons.policy.decisions import PendingReason, Start
from gpucommons.policy.placement.shapes import job_pools
from gpucommons.policy.protocols import Admitted, Verdict
from gpucommons.policy.snapshot import PendingJob, RunningJob, Snapshot

MILLI = 1000
CAP_SLACK = 1e-9  # relative: float sums of watts may differ in the last digits


def caps_at(cluster: Cluster, now: float) -> dict[str, float]:
    """Each capped site's cap in watts at ``now`` (uncapped sites are left out)."""
    caps = {}
    for site in cluster.capped_sites:
        cap = site.cap_schedule.cap_w_at(now)
        if math.isfinite(cap):
            caps[site.name] = cap
    return caps


def _mw(watts: float) -> float:
    return watts / WATTS_PER_MW


def power_text(watts: float) -> str:
    """Watts as people read a site's draw: MW from 1 MW up, kW below."""
    return f"{_mw(watts):,.2f} MW" if watts >= WATTS_PER_MW else f"{watts / 1000:,.1f} kW"


def power_reason(site: str, draw_w: float, cap_w: float) -> PendingReason:
    detail = f"site {site} would draw {power_text(draw_w)}, cap {power_text(cap_w)}"
    return PendingReason("power", detail, figures=(("draw_mw", _mw(draw_w)), ("cap_mw", _mw(cap_w))))


@dataclass
class PowerGate:
    cluster: Cluster
    draw: SiteDraw
    caps: Mapping[str, float]
    running: Mapping[int, RunningJob]
    preempt: bool
    _min_device_w: dict[str, float] = field(default_factory=dict)
    _refused: dict[tuple[float, frozenset[str], frozenset[str]], tuple[int, PendingReason]] = field(
        default_factory=dict
    )

    def __post_init__(self) -> None:
        pue = {s.name: s.pue for s in self.cluster.sites}
        for pool in self.cluster.pools:
            watts = pue[pool.site] * self.draw.model.device_w(pool.model.tdp_w)
            self._min_device_w[pool.site] = min(self._min_device_w.get(pool.site, math.inf), watts)

    def _devices(self, job: Job) -> float:
        return job.gpu_milli / MILLI if job.shared else float(job.gpus)

    checks_placements = True

    def admit(self, pending: PendingJob, admitted: Admitted | None) -> Verdict:
        job = pending.job if admitted is None else admitted.job
        devices = self._devices(job)
        # A site at its cap refuses a long queue job after job: one reason per (devices, sites,
        # models) until the draw moves, instead of one formatted string per job.
        key = (devices, job.accepted_sites, job.accepted_models)
        cached = self._refused.get(key)
        if cached is not None and cached[0] == self.draw.changes:
            return cached[1]
        verdict = self._admit(job, devices, admitted)
        if isinstance(verdict, PendingReason):
            self._refused[key] = (self.draw.changes, verdict)
        return verdict

    def _admit(self, job: Job, devices: float, admitted: Admitted | None) -> Verdict:
        closed: list[str] = []
        for site, cap in self.caps.items():
            if self.draw.site_w[site] + devices * self._min_device_w.get(site, 0.0) > cap * (1 + CAP_SLACK):
                closed.append(site)
        if not closed:
            return admitted
        sites = job.accepted_sites or frozenset(s.name for s in self.cluster.sites)
        open_sites = sites - set(closed)
        narrowed = replace(job, accepted_sites=open_sites) if open_sites else job
        if open_sites and job_pools(self.cluster, narrowed):
            return Admitted(narrowed, admitted is not None and admitted.borrowing)
        site = min(closed, key=lambda s: self.caps[s] - self.draw.site_w[s])
        need = self.draw.site_w[site] + devices * self._min_device_w.get(site, 0.0)
        return power_reason(site, need, self.caps[site])

    def accept(self, job: Job, placement: Placement, victims: Sequence[RunningJob]) -> PendingReason | None:
        site = self.draw.site_of(placement)
        cap = self.caps.get(site)
        if cap is None:
            return None
        for victim in victims:
            self.draw.remove(victim.placement)
        after = self.draw.site_w[site] + self.draw.delta_w(placement)[1]
        for victim in victims:
            self.draw.add(victim.placement)
        return power_reason(site, after, cap) if after > cap * (1 + CAP_SLACK) else None

    def started(self, start: Start) -> Start:
        self.draw.add(start.placement)
        return start

    def preempted(self, running: RunningJob) -> None:
        self.draw.remove(running.placement)

    def evictions(self) -> Sequence[tuple[RunningJob, str]]:
        """The newest preemptible jobs of each site over its cap, until it would be back under."""
        if not self.preempt:
            return ()
        over = {s for s, cap in self.caps.items() if self.draw.site_w[s] > cap * (1 + CAP_SLACK)}
        if not over:
            return ()
        victims: list[tuple[RunningJob, str]] = []
        newest = sorted(self.running.values(), key=lambda r: (-r.started_s, -r.job.id))
        for site in sorted(over):
            cap = self.caps[site]
            taken = []
            for running in newest:
                if self.draw.site_w[site] <= cap * (1 + CAP_SLACK):
                    break
                if running.job.preemptible and self.draw.site_of(running.placement) == site:
                    self.draw.remove(running.placement)
                    taken.append(running)
            for running in taken:  # the cycle books each eviction through ``preempted``
                self.draw.add(running.placement)
            reason = f"site {site} over its {power_text(cap)} power cap"
            victims.extend((r, reason) for r in taken)
        return victims


@dataclass(frozen=True)
class PowerStage:
    model: PowerModel = field(default_factory=PowerModel)
    preempt: bool = False
    name: str = "power"

    def open(self, snapshot: Snapshot, now: float) -> PowerGate | None:
        caps = caps_at(snapshot.cluster, now)
        if not caps:
            return None
        given = snapshot.site_draw
        if given is not None and given.model == self.model and given.cluster is snapshot.cluster:
            draw = given.copy()
        else:
            draw = SiteDraw(snapshot.cluster, self.model, (r.placement for r in snapshot.running.values()))
        return PowerGate(snapshot.cluster, draw, caps, snapshot.running, self.preempt)
