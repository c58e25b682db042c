"""Admission stages: the rules that make the pool a commons, each a pure module behind one Protocol
(``Stage`` in ``policy/protocols.py``), listed in order in ``PolicyConfig.stages``.

- ``award``: an active award for the model the job would run on, with budget left for it;
- ``residency``: sovereign jobs only on sovereign sites (a placement filter);
- ``even_gangs``: the same GPUs on every node, for backends that need it (Slurm);
- ``arrays``: no more than ``%N`` tasks of a job array running at once (design note 0011);
- ``quota``: guarantees from awards, borrowing of idle capacity, and reclaim;
- ``power``: a start only while the site's projected draw stays under its cap;
- ``siting``: of the sites a job may use, try the one with the most power headroom, then the least
  carbon and price per kWh of IT load, first;
- ``reservations``: whole nodes held for a tenant from a start time: drained before it, the tenant's
  alone during it (design note 0016).

``Commons`` says which of them a run uses; ``registry.build_policy`` turns it into stages. Design note
0006 has the protocol, the power model and how the live snapshot gets the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpucommons.domain.power import PowerModel


@dataclass(frozen=True)
class Commons:
    """Which commons rules a policy enforces, and how.

        ``awards``: jobs need an active, funded award (the snapshot carries the awards). ``borrowing``:
        False makes each tenant's award a static partition (it never runs beyond its guarantee), for any
        ordering policy. ``power``: enforce site caps (no effect on uncapped sites); ``power_preempt``: a
        falling cap preempts the newest preemptible jobs until the site is back under it. ``even_gangs``:
        reshape jobs to the same GPUs per node before placement. ``siting``: try the sites a job may use
    best first (headroom, carbon, price) instead of letting the placer choose across sites.
    ``arrays``: hold a job array's tasks at its concurrency limit (no effect on a run without one).
    ``reservations``: honour the snapshot's reservations (no effect on a run without one).
    ``checkpoint_aware``: every preemptor (the policy's, priority classes', the reservations' where
    they have a choice) stops the jobs that would lose the least work first (``policy/lost_work.py``,
    design note 0016); off, the newest first (LAS: the lowest queue first), as before."""

    awards: bool = False
    residency: bool = True
    borrowing: bool = True
    power: bool = True
    power_preempt: bool = False
    power_model: PowerModel = field(default_factory=PowerModel)
    even_gangs: bool = False
    siting: bool = False
    arrays: bool = True
    reservations: bool = True
    checkpoint_aware: bool = False
