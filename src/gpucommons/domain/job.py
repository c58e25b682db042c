"""Jobs as the scheduler sees them, and where they were placed."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Job:
    """A request for accelerators.

    ``gpus`` is the total whole-GPU count. ``gpus_per_node`` pins the gang shape (``gpus /
    gpus_per_node`` nodes with exactly that many GPUs each); ``None`` lets the placer choose, preferring
    one node and otherwise the fewest nodes. ``accepted_models`` empty means any model. ``duration_s`` is
    the true run time on an A100-speed device (known to the simulator only); ``estimate_s`` is what the
    user declared (time limit), used by backfill and for estimated starts.
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

    def accepts(self, model: str) -> bool:
        return not self.accepted_models or model in self.accepted_models


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a job runs: for each node index, the GPU indices on that node."""

    node_gpus: tuple[tuple[int, tuple[int, ...]], ...]

    @property
    def gpus(self) -> int:
        return sum(len(g) for _, g in self.node_gpus)

    @property
    def nodes(self) -> tuple[int, ...]:
        return tuple(n for n, _ in self.node_gpus)
