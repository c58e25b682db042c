"""PWR: power-aware placement (Lettich et al., "Power- and fragmentation-aware online scheduling for GPU
datacenters", CCGrid 2025), alone and combined with FGD.

Power model (``NodePowerModel``), the paper's, per node type:

- GPUs: a GPU with nothing on it draws its idle power; a GPU holding anything (a whole job or any share)
  draws its peak power. No GPU is ever off: an empty node still draws the idle power of all its GPUs.
- CPUs: a node has ``vCPUs / vcpus_per_core`` physical cores (2 vCPUs per core, as Alibaba instances
  expose them) on ``ceil(cores / cores_per_socket)`` sockets. Cores not wholly free count as working;
  ``ceil(working / cores_per_socket)`` sockets draw their peak power, the others their idle power.
- Node power = GPU power + CPU power; datacenter power = the sum over all nodes (memory, disks, fans and
  cooling are left out, as in the paper).

The node types are the catalog's accelerator models (``domain/accelerators.py``): each gives the GPU's
idle and peak watts and the CPU model the node carries. Defaults are the constants of the paper's
simulator (the authors' fork of the openb ``kubernetes-scheduler-simulator``): T4 10/70 W, A10 30/150 W,
P100 25/250 W, V100 (16 and 32 GB) 30/300 W, A100 50/400 W, and 25/250 W for the undisclosed G1/G2/G3;
CPUs Xeon 8163 (T4 nodes; 24 cores, 20/165 W), E5-2682 v4 (P100 nodes and unknown types; 16 cores,
15/120 W), Xeon 6326 (V100 nodes; 16 cores, 20/185 W) and Xeon 8369B (A10, A100, G2, G3 nodes; 32 cores,
20/270 W). Models the paper does not cover (the pool's H100, B200, NPUs ...) peak at their catalog TDP and
idle at ``idle_fraction`` of it (0.1: the paper's GPUs idle at 7-14 % of peak). Every figure is an input:
pass another ``NodePowerModel`` to measure a different fleet.

This is not ``domain/power.py``'s model: that one projects what running work adds to a site (for caps)
and lets idle nodes draw nothing; placement changes which devices leave idle, so PWR must count idle
draw, or waking an idle GPU would look as cheap as filling a busy one.

Scores:

- ``PwrPlacer`` (the paper's PWR alone): each job goes where it raises node power least, i.e. to the
  node state whose power grows least when the job is added. Many candidates tie in this model (a share on
  an already busy GPU of a node whose sockets are already active costs 0 W); ties go to the node left
  with the least free GPU milli (packing), then the least free CPU, so idle GPUs stay idle as long as
  possible. The paper's simulator breaks such ties by its seeded node order (``fgd.py``); this is a
  deterministic rule that keeps the power goal.
- ``FgdPwrPlacer`` (PWR combined with FGD, the paper's proposal), as the authors' simulator scores it
  (Fr4nz83/PWR-plugin-kubernetes, ``pkg/simulator/plugin/pwr_score.go`` beside the FGD plugin): per
  feasible node, the raw PWR score is ``int64(power before - power after)`` in watts for the node's
  cheapest option, normalised over all feasible nodes to [0, 100] with integer division (100: the
  cheapest node; all 100 when they tie); the FGD score is FGD's integer ``int64(100 x sigmoid(-dF /
  1000))`` (``fgd.frag_score``; ``fgd_score`` here is the same value before truncation). The framework
  adds the plugin scores times their weights, so the node with the highest ``w x PWR + (1 - w) x FGD``
  wins, computed in integer thousandths so equal sums tie exactly; ties go to FGD's seeded node order,
  and the GPU inside the node is FGD's choice (the paper's runs select GPUs with FGD). ``w =
  pwr_weight``: the authors ran PWR/FGD weights 25/975, 50/950, 100/900, 200/800, 300/700 and 500/500
  (of 1000) and their published plots keep 50/950, 100/900 and 200/800 beside FGD; the default is the
  middle one, 100/900 (``w = 0.1``). With ``w = 0`` it places exactly as ``fgd`` does.

Both score node state classes among the pools ``shapes.job_pools`` allows for the job (models, sites,
residency; ``scored.py``), power is memoised per node state, so a placement costs O(distinct node
states). Gangs that fit no single node go to ``fit.gang``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from gpucommons.domain.accelerators import AcceleratorModel
from gpucommons.domain.cluster import Cluster, Pool
from gpucommons.domain.job import Job, Placement
from gpucommons.policy.capacity import MILLI, Capacity, StateKey
from gpucommons.policy.placement.fgd import Candidate, FgdPlacer
from gpucommons.policy.placement.scored import Score, ScoredPlacer, after


@dataclass(frozen=True, slots=True)
class DevicePower:
    """Idle and peak draw of one accelerator, in watts."""

    idle_w: float
    peak_w: float


@dataclass(frozen=True, slots=True)
class CpuPower:
    """One CPU socket: idle and peak draw in watts and its physical cores."""

    name: str
    idle_w: float
    peak_w: float
    cores: int


XEON_8163 = CpuPower("Intel-Xeon-8163", 20.0, 165.0, 24)
XEON_E5_2682_V4 = CpuPower("Intel-Xeon-E5-2682-v4", 15.0, 120.0, 16)
XEON_6326 = CpuPower("Intel-Xeon-6326", 20.0, 185.0, 16)
XEON_8369B = CpuPower("Intel-Xeon-8369B", 20.0, 270.0, 32)

PAPER_GPUS: Mapping[str, DevicePower] = MappingProxyType(
    {
        "T4": DevicePower(10.0, 70.0),
        "A10": DevicePower(30.0, 150.0),
        "P100": DevicePower(25.0, 250.0),
        "V100M16": DevicePower(30.0, 300.0),
        "V100M32": DevicePower(30.0, 300.0),
        "A100": DevicePower(50.0, 400.0),
        "G1": DevicePower(25.0, 250.0),
        "G2": DevicePower(25.0, 250.0),
        "G3": DevicePower(25.0, 250.0),
    }
)
PAPER_CPUS: Mapping[str, CpuPower] = MappingProxyType(
    {
        "T4": XEON_8163,
        "P100": XEON_E5_2682_V4,
        "V100M16": XEON_6326,
        "V100M32": XEON_6326,
        "A10": XEON_8369B,
        "A100": XEON_8369B,
        "G2": XEON_8369B,
        "G3": XEON_8369B,
    }
)
IDLE_FRACTION = 0.1
VCPUS_PER_CORE = 2
PWR_WEIGHT = 0.1  # the paper's PWR 100 / FGD 900


@dataclass(frozen=True)
class NodePowerModel:
    """The paper's node power model (module docstring); every constant can be replaced.

    ``gpus`` and ``cpus`` are keyed by accelerator model name (the node type); ``default_cpu`` serves
    node types missing from ``cpus`` (the paper's simulator uses the E5-2682 v4 profile there); GPUs
    missing from ``gpus`` peak at the catalog TDP and idle at ``idle_fraction`` of it.
    """

    gpus: Mapping[str, DevicePower] = field(default_factory=lambda: PAPER_GPUS)
    cpus: Mapping[str, CpuPower] = field(default_factory=lambda: PAPER_CPUS)
    default_cpu: CpuPower = XEON_E5_2682_V4
    idle_fraction: float = IDLE_FRACTION
    vcpus_per_core: int = VCPUS_PER_CORE

    def gpu(self, model: AcceleratorModel) -> DevicePower:
        known = self.gpus.get(model.name)
        return known if known is not None else DevicePower(self.idle_fraction * model.tdp_w, model.tdp_w)

    def cpu(self, model: AcceleratorModel) -> CpuPower:
        return self.cpus.get(model.name, self.default_cpu)

    def node_w(self, pool: Pool, cpu_free_milli: int, gpu_free_milli: Sequence[int]) -> float:
        """Draw of one node of ``pool`` with this much free CPU and these free milli per GPU."""
        return _PoolPower.of(self, pool).node_w(cpu_free_milli, gpu_free_milli)


@dataclass(frozen=True, slots=True)
class _PoolPower:
    """A pool's power constants, resolved once."""

    gpu_idle_w: float
    gpu_peak_w: float
    cpu_idle_w: float
    cpu_peak_w: float
    cores_per_socket: int
    cores: int
    sockets: int
    milli_per_core: int

    @classmethod
    def of(cls, model: NodePowerModel, pool: Pool) -> _PoolPower:
        gpu, cpu = model.gpu(pool.model), model.cpu(pool.model)
        cores = -(-pool.cpus_per_node // model.vcpus_per_core)
        return cls(
            gpu.idle_w,
            gpu.peak_w,
            cpu.idle_w,
            cpu.peak_w,
            cpu.cores,
            cores,
            -(-cores // cpu.cores),
            model.vcpus_per_core * MILLI,
        )

    def node_w(self, cpu_free_milli: int, gpu_free_milli: Sequence[int]) -> float:
        idle_gpus = sum(1 for v in gpu_free_milli if v >= MILLI)
        gpu_w = idle_gpus * self.gpu_idle_w + (len(gpu_free_milli) - idle_gpus) * self.gpu_peak_w
        working = max(0, self.cores - cpu_free_milli // self.milli_per_core)
        active = min(self.sockets, -(-working // self.cores_per_socket))
        return gpu_w + active * self.cpu_peak_w + (self.sockets - active) * self.cpu_idle_w


class PowerMeter:
    """Node power per node state (memoised) and datacenter power of a ``Capacity``, in watts."""

    def __init__(self, model: NodePowerModel | None = None) -> None:
        self.model = model if model is not None else NodePowerModel()
        self._cluster: Cluster | None = None
        self._pools: tuple[_PoolPower, ...] = ()
        self._memo: dict[StateKey, float] = {}

    def bind(self, capacity: Capacity) -> None:
        """Measure ``capacity``'s cluster (memos are per cluster)."""
        if self._cluster is not capacity.cluster:
            self._cluster = capacity.cluster
            self._pools = tuple(_PoolPower.of(self.model, p) for p in capacity.cluster.pools)
            self._memo = {}

    def node_w(self, key: StateKey) -> float:
        value = self._memo.get(key)
        if value is None:
            value = self._memo[key] = self._pools[key[0]].node_w(key[1], key[3])
        return value

    def cluster_w(self, capacity: Capacity) -> float:
        """Datacenter power: every up node, busy or idle (down nodes draw nothing)."""
        self.bind(capacity)
        return sum(self.node_w(key) * len(nodes) for key, nodes in capacity.classes().items())


class PwrPlacer(ScoredPlacer):
    """PWR alone: least increase of node power, packing among ties (module docstring)."""

    def __init__(self, power: NodePowerModel | None = None) -> None:
        self.meter = PowerMeter(power)

    def increase(self, key: StateKey, job: Job, eff: int, option: int) -> float:
        """Watts a node in state ``key`` would add by taking ``job`` (on a GPU with ``option`` free)."""
        return self.meter.node_w(after(key, job, eff, option)) - self.meter.node_w(key)

    def place(self, job: Job, capacity: Capacity) -> Placement | None:
        self.meter.bind(capacity)
        return super().place(job, capacity)

    def score(self, key: StateKey, job: Job, eff: int, option: int) -> Score:
        new = after(key, job, eff, option)
        added = self.meter.node_w(new) - self.meter.node_w(key)
        return (round(added, 6), float(sum(new[3])), float(new[1]))


def fgd_score(growth_milli: float) -> float:
    """FGD's node score in the paper's simulator before truncation: ``100 x sigmoid(-growth / 1000)``,
    in (0, 100). The plugin returns it truncated to an integer (``fgd.frag_score``)."""
    x = growth_milli / MILLI
    if x >= 0:
        e = math.exp(-x)
        return 100.0 * e / (1.0 + e)
    return 100.0 / (1.0 + math.exp(x))


def normalised_pwr(raw: Sequence[int]) -> list[int]:
    """The PWR plugin's ``NormalizeScore``: integer scores min-max scaled to [0, 100] with integer
    division (the cheapest node 100); all 100 when they are equal."""
    low, high = min(raw), max(raw)
    if low == high:
        return [100] * len(raw)
    return [(r - low) * 100 // (high - low) for r in raw]


class FgdPwrPlacer(FgdPlacer):
    """FGD and PWR combined by a weighted sum of their integer node scores (module docstring)."""

    pwr_weight = PWR_WEIGHT

    def __init__(self, pwr_weight: float | None = None, power: NodePowerModel | None = None) -> None:
        super().__init__()
        if pwr_weight is not None:
            if not 0.0 <= pwr_weight <= 1.0:
                raise ValueError(f"pwr_weight must be within [0, 1], got {pwr_weight}")
            self.pwr_weight = pwr_weight
        self.meter = PowerMeter(power)
        # per feasible node state of the last placement: (normalised PWR score, FGD score)
        self._nodes: dict[StateKey, tuple[int, int]] = {}

    @property
    def weight_milli(self) -> int:
        """PWR's plugin weight out of 1000 (FGD has the rest), as the authors' runs set them."""
        return round(self.pwr_weight * 1000)

    def place(self, job: Job, capacity: Capacity) -> Placement | None:
        self.meter.bind(capacity)
        self._nodes = {}
        return super().place(job, capacity)

    def pwr_raw(self, key: StateKey, job: Job, eff: int, option: int) -> int:
        """The PWR plugin's raw score: ``int64(power before - power after)`` in watts (0 or less)."""
        return int(self.meter.node_w(key) - self.meter.node_w(after(key, job, eff, option)))

    def totals(self, job: Job, candidates: Sequence[Candidate]) -> list[int]:
        """``w x PWR + (1 - w) x FGD`` per candidate, in thousandths of a point (integers, so equal
        sums tie exactly and the node order decides, as in the framework's weighted sum)."""
        raw = [max(self.pwr_raw(key, job, eff, o) for o in scores) for key, eff, scores in candidates]
        pwr = normalised_pwr(raw)
        weight = self.weight_milli
        out = []
        for (key, _, scores), p in zip(candidates, pwr, strict=True):
            fgd = max(scores.values())
            self._nodes[key] = (p, fgd)
            out.append(weight * p + (1000 - weight) * fgd)
        return out

    def combined(self, key: StateKey) -> float:
        """``w x PWR + (1 - w) x FGD`` of a node state scored by the last placement (higher is better)."""
        pwr, fgd = self._nodes[key]
        return (self.weight_milli * pwr + (1000 - self.weight_milli) * fgd) / 1000
