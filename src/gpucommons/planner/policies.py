"""The arrangements a plan compares, by name, as the simulator's registry builds them: no scheduling
logic here, only which policy and which commons rules.

- ``static``: each award a partition of its own (the quota stage without borrowing): an award's idle
  servers stay idle, a proposal without an award is never served.
- ``commons``: the same awards as guarantees, idle capacity lent to anyone and taken back by preemption
  when its owner needs it (the quota stage with borrowing and its reclaim preemptor).
- ``fairshare``: no guarantees; multifactor fair share with EASY backfill over everyone.
- ``fifo``: first come, first served with a strict line.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpucommons.errors import ConfigError
from gpucommons.policy.constraints import Commons
from gpucommons.policy.protocols import PolicyConfig
from gpucommons.policy.registry import build_policy


@dataclass(frozen=True)
class Arrangement:
    policy: str  # a name of ``policy.registry.POLICIES``
    borrowing: bool


ARRANGEMENTS = {
    "static": Arrangement("quota", borrowing=False),
    "commons": Arrangement("quota", borrowing=True),
    "fairshare": Arrangement("fairshare", borrowing=True),
    "fifo": Arrangement("fifo", borrowing=True),
}
PLACEMENT = "best-fit"


def check_policy(name: str, where: str) -> str:
    if name not in ARRANGEMENTS:
        raise ConfigError(f"{where}: unknown policy {name!r}; known: {', '.join(ARRANGEMENTS)}")
    return name


def build_arrangement(name: str, site_caps: bool) -> PolicyConfig:
    """The policy config of arrangement ``name``: awards enforced, power caps only where kept."""
    arrangement = ARRANGEMENTS[check_policy(name, "policy")]
    commons = Commons(awards=True, borrowing=arrangement.borrowing, power=site_caps)
    return build_policy(arrangement.policy, PLACEMENT, commons)
