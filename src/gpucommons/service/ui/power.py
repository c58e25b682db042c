"""Each site's power draw now against its cap now, for the admin page.

The draw is the power stage's own formula (``SiteDraw``, ``domain/power.py``: busy devices at their
assumed utilization plus each busy node's base, times the site's PUE) applied to the GPUs running jobs
hold, read from the database, so it is right whichever process runs the scheduler. A node's held GPUs
count as one placement there: the formula adds devices one by one and a node's base once, so this is
the sum the placements themselves give. The cap is the site's at this moment, its cap windows
included (``caps_at``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Placement
from gpucommons.domain.power import PowerModel
from gpucommons.policy.constraints.draw import SiteDraw
from gpucommons.policy.constraints.power import caps_at
from gpucommons.store.base import to_s
from gpucommons.store.nodes import node_states


@dataclass(frozen=True)
class SitePower:
    site: str
    draw_w: float
    cap_w: float | None  # None: uncapped
    gpus_busy: int
    gpus: int

    @property
    def share_of_cap(self) -> float | None:
        return self.draw_w / self.cap_w if self.cap_w else None


def site_power(session: Session, cluster: Cluster, now: datetime) -> list[SitePower]:
    """One line per site of ``cluster``, in the cluster file's order."""
    states = node_states(session, cluster)
    held = [
        Placement(((cluster.node_by_name[s.name].index, tuple(range(s.gpus_allocated))),))
        for s in states
        if s.gpus_allocated
    ]
    draw = SiteDraw(cluster, PowerModel(), held)
    caps = caps_at(cluster, to_s(now))
    busy: dict[str, int] = {}
    total: dict[str, int] = {}
    for s in states:
        busy[s.site] = busy.get(s.site, 0) + s.gpus_allocated
        total[s.site] = total.get(s.site, 0) + s.gpus
    return [
        SitePower(
            site.name,
            draw.site_w[site.name],
            caps.get(site.name),
            busy.get(site.name, 0),
            total.get(site.name, 0),
        )
        for site in cluster.sites
    ]
