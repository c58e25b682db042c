"""Sites, pools of identical nodes, and the nodes themselves.

A ``Cluster`` is static inventory: what exists, not what is in use. Nodes are numbered densely
(``Node.index``) so the policy core can keep per-node state in flat lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from gpucommons.domain.accelerators import AcceleratorModel
from gpucommons.domain.power import CapSchedule, CapWindow
from gpucommons.domain.speeds import SpeedTable


@dataclass(frozen=True, slots=True)
class Site:
    """A data-centre site: where power, price and carbon come from, and what it may draw.

    ``power_cap_mw`` is the facility cap (``None``: uncapped); ``cap_windows`` lower or raise it at
    set hours of the week, read at ``utc_offset_h`` (Korea: 9); see ``domain/power.py``."""

    name: str
    region: str = "capital"
    sovereign: bool = True
    power_cap_mw: float | None = None
    pue: float = 1.3
    price_krw_per_kwh: float = 182.7
    carbon_g_per_kwh: float = 417.3
    cap_windows: tuple[CapWindow, ...] = ()
    utc_offset_h: float = 0.0

    @property
    def cap_schedule(self) -> CapSchedule:
        return CapSchedule(self.power_cap_mw, self.cap_windows, self.utc_offset_h)


@dataclass(frozen=True, slots=True)
class Topology:
    """How a pool's nodes are wired: NVLink domain size and network block size, both in nodes."""

    nvlink_domain_nodes: int = 1
    block_nodes: int = 0  # 0: the whole pool is one network block


@dataclass(frozen=True, slots=True)
class Pool:
    """A group of identical nodes at one site."""

    name: str
    site: str
    model: AcceleratorModel
    node_count: int
    gpus_per_node: int
    cpus_per_node: int = 64
    memory_gib_per_node: int = 1024
    topology: Topology = field(default_factory=Topology)
    node_base_w: float | None = None  # a busy node's draw beside its devices; None: the power model's

    @property
    def gpus(self) -> int:
        return self.node_count * self.gpus_per_node


@dataclass(frozen=True, slots=True)
class Node:
    """One node; ``index`` is its dense position in ``Cluster.nodes``; ``block`` its network block."""

    index: int
    name: str
    pool: str
    model: str
    gpus: int
    cpus: int
    memory_gib: int
    block: int


@dataclass(frozen=True, eq=False)
class Cluster:
    """Static inventory: sites, pools and the nodes expanded from them. Compared and hashed by identity:
    it is built once per run and used as a cache key on hot paths. ``speeds``: how fast each class of
    job runs on each model (design note 0009); ``None``, a speed-blind cluster where a job's work is
    its run time on any model."""

    name: str
    sites: tuple[Site, ...]
    pools: tuple[Pool, ...]
    nodes: tuple[Node, ...]
    speeds: SpeedTable | None = None

    @classmethod
    def build(
        cls, name: str, sites: tuple[Site, ...], pools: tuple[Pool, ...], speeds: SpeedTable | None = None
    ) -> Cluster:
        """Expand pools into numbered nodes; node names are ``<pool>-<n>`` (1-based)."""
        nodes: list[Node] = []
        for pool in pools:
            block_size = pool.topology.block_nodes or pool.node_count
            for i in range(pool.node_count):
                nodes.append(
                    Node(
                        index=len(nodes),
                        name=f"{pool.name}-{i + 1}",
                        pool=pool.name,
                        model=pool.model.name,
                        gpus=pool.gpus_per_node,
                        cpus=pool.cpus_per_node,
                        memory_gib=pool.memory_gib_per_node,
                        block=i // block_size,
                    )
                )
        return cls(name=name, sites=sites, pools=pools, nodes=tuple(nodes), speeds=speeds)

    def run_speed(self, job_class: str, node_indices: Iterable[int]) -> float:
        """The speed a job of ``job_class`` runs at on these nodes: that of the slowest model among them
        (a gang moves at its slowest member's pace); 1 on a speed-blind cluster or with no nodes."""
        if self.speeds is None:
            return 1.0
        speeds = self.speeds
        return min((speeds.speed(job_class, self.nodes[i].model) for i in node_indices), default=1.0)

    @property
    def total_gpus(self) -> int:
        return sum(p.gpus for p in self.pools)

    @cached_property
    def node_by_name(self) -> Mapping[str, Node]:
        return {n.name: n for n in self.nodes}

    @cached_property
    def pool_by_name(self) -> Mapping[str, Pool]:
        return {p.name: p for p in self.pools}

    @cached_property
    def site_by_name(self) -> Mapping[str, Site]:
        return {s.name: s for s in self.sites}

    @cached_property
    def capped_sites(self) -> tuple[Site, ...]:
        """Sites with a power cap or cap windows (read every cycle: most clusters have none)."""
        return tuple(s for s in self.sites if s.cap_schedule.capped)

    @cached_property
    def max_gpus_per_node(self) -> int:
        return max((p.gpus_per_node for p in self.pools), default=0)
