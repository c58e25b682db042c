"""Jobs as the scheduler sees them, and where they were placed."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Job:
    """A request for accelerators.

    ``gpus`` is the total whole-GPU count. ``gpus_per_node`` pins the gang shape (``gpus /
    gpus_per_node`` nodes with exactly that many GPUs each); ``None`` lets the placer choose, preferring
    one node and otherwise the fewest nodes. ``accepted_models`` empty means any model. ``duration_s`` is
    the job's work: its true run time on the cluster's reference model (known to the simulator only; on
    another model it runs at ``Cluster.run_speed``, design note 0009); ``estimate_s`` is what the user
    declared (time limit), used by backfill and for estimated starts.

    Placement quality (design note 0002): ``gpu_milli`` below 1000 with ``gpus == 1`` asks for a share of
    one accelerator (an NPU rounds it up to one of its ``partitions`` slices); ``cpu_milli`` and
    ``memory_mib`` are needed on every node the job uses; ``topology="required"`` means a multi-node job
    must fit inside one NVLink domain (pools with ``nvlink_domain_nodes > 1``) or one network block, while
    ``"preferred"`` only asks the placer to try.

    Residency and placement filters (design note 0006): ``sovereign`` jobs may run only on sovereign
    sites; ``accepted_sites`` empty means any site. Admission stages narrow both (and
    ``accepted_models``) before the placer sees the job, so every placer honours them alike.
    """

    id: int
    tenant: str
    gpus: int
    submit_s: float
    duration_s: float
    estimate_s: float
    gpus_per_node: int | None = None
    accepted_models: frozenset[str] = field(default_factory=frozenset)
    priority_class: str = "normal"
    preemptible: bool = True
    gpu_milli: int = 1000
    cpu_milli: int = 0
    memory_mib: int = 0
    topology: str = "preferred"
    sovereign: bool = False
    accepted_sites: frozenset[str] = field(default_factory=frozenset)
    job_class: str = ""  # the kind of work (``domain.speeds.JOB_CLASSES``); "" is the table's default
    array_id: int | None = None  # the job array it is a task of (design note 0011); ``None``: none
    # How often it writes a checkpoint, as declared (``None``: not declared); with the running job's
    # last reported checkpoint it bounds the work a preemption loses (design note 0016).
    checkpoint_interval_s: float | None = None
    shape: tuple[object, ...] = field(init=False, repr=False, compare=False)
    """Everything placement looks at, but not who the job is: jobs of one shape fit or fail alike, so
    a scheduling cycle tries each shape once. Made once per job (the cycle reads it for every pending
    job of every cycle). Jobs with no site filter, nearly all, get a shorter key; the lengths differ,
    so keys of the two kinds never collide."""

    def __post_init__(self) -> None:
        if not self.accepted_sites and not self.sovereign:
            shape: tuple[object, ...] = (
                self.gpus,
                self.gpus_per_node,
                self.accepted_models,
                self.gpu_milli,
                self.cpu_milli,
                self.memory_mib,
                self.topology,
            )
        else:
            shape = (
                self.gpus,
                self.gpus_per_node,
                self.accepted_models,
                self.accepted_sites,
                self.sovereign,
                self.gpu_milli,
                self.cpu_milli,
                self.memory_mib,
                self.topology,
            )
        object.__setattr__(self, "shape", shape)

    @property
    def shared(self) -> bool:
        """True when the job asks for part of one accelerator rather than whole ones."""
        return self.gpus == 1 and self.gpu_milli < 1000

    def accepts(self, model: str) -> bool:
        return not self.accepted_models or model in self.accepted_models


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a job runs: for each node index, the GPU indices on that node.

    ``milli`` is the share of each listed GPU the job holds: 1000 (whole devices) except for a shared
    placement, which names one GPU on one node. ``cpu_milli`` and ``memory_mib`` are held on every listed
    node. The defaults describe the whole-GPU placements the replay path has always used.
    """

    node_gpus: tuple[tuple[int, tuple[int, ...]], ...]
    milli: int = 1000
    cpu_milli: int = 0
    memory_mib: int = 0

    @property
    def gpus(self) -> int:
        return sum(len(g) for _, g in self.node_gpus)

    @property
    def nodes(self) -> tuple[int, ...]:
        return tuple(n for n, _ in self.node_gpus)
