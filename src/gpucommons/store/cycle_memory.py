"""What the live store keeps from one scheduler cycle to the next (design note 0013): the view of the
active jobs, the decayed usage sums, and what the last decided cycle saw, so that a cycle that would
see exactly the same is skipped.

A cycle is skipped only when nothing it reads has changed since the last cycle that was decided and
committed: no job was stamped (and no launch backoff ran out), and the projects, the awards (and which
of them are active now), the unavailable and drained nodes, the GPUs foreign backend jobs hold, the
job arrays' limits, the sites' power caps now and the live reservations (and, for each, which
occurrence is in force or next, and whether it has begun) are all as they were: a reservation created
or cancelled, or one whose occurrence opens or closes, is decided on at once. What the policy derives
from the clock alone (LAS service levels of running jobs, a reclaim's minimum run, usage decaying) is
not an input here, so a cycle is decided at least every ``DECIDE_AT_LEAST_EVERY_S`` whatever happened.

Only the engine that holds the lease builds cycles on its memory, and a new holding of the lease starts
a new memory (``store/scheduler_state.py``): a scheduler that held it in between may have written
reasons the view never saw. ``reset`` forgets everything too, after a write the database refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpucommons.domain.award import Award
from gpucommons.domain.cluster import Cluster
from gpucommons.domain.reservation import Reservation
from gpucommons.store.decayed_usage import DecayedUsage
from gpucommons.store.job_view import JobView

DECIDE_AT_LEAST_EVERY_S = 30.0

ReservationPhase = tuple[Reservation, tuple[float, float] | None, bool]
"""A live reservation, its occurrence in force at a cycle or next, and whether that one has begun."""


@dataclass(frozen=True)
class CycleInputs:
    """Everything but the jobs a cycle reads, in a form that compares exactly."""

    projects: tuple[tuple[int, str, bool], ...]
    awards: tuple[Award, ...]
    active_awards: frozenset[int]
    down_nodes: frozenset[str]
    held_gpus: tuple[tuple[str, int | None], ...]
    array_limits: tuple[tuple[int, int], ...]
    caps_w: tuple[tuple[str, float], ...]
    reservations: tuple[ReservationPhase, ...] = ()


def reservation_phases(reservations: tuple[Reservation, ...], now: float) -> tuple[ReservationPhase, ...]:
    """What a cycle at ``now`` sees of each reservation, compared exactly between cycles."""
    phases = []
    for reservation in reservations:
        window = reservation.window_at(now)
        phases.append((reservation, window, window is not None and window[0] <= now))
    return tuple(phases)


class CycleMemory:
    def __init__(self, cluster: Cluster, half_life_s: float) -> None:
        self.jobs = JobView(cluster, half_life_s)
        self.usage = DecayedUsage(half_life_s)
        self._seen: CycleInputs | None = None  # the inputs of the last cycle decided and committed
        self._decided_s: float | None = None
        self._undecided = True  # jobs changed since that cycle

    def reset(self) -> None:
        self.jobs.reset()
        self.usage = DecayedUsage(self.usage.half_life_s)
        self._seen, self._decided_s, self._undecided = None, None, True

    def jobs_changed(self) -> None:
        """The view took in changes no committed cycle has decided on yet."""
        self._undecided = True

    def unchanged(self, inputs: CycleInputs, now: float) -> bool:
        """Whether a cycle at ``now`` on ``inputs`` would see what the last decided cycle saw."""
        return (
            not self._undecided
            and self._decided_s is not None
            and now - self._decided_s < DECIDE_AT_LEAST_EVERY_S
            and inputs == self._seen
        )

    def decided(self, inputs: CycleInputs, now: float) -> None:
        """A cycle on ``inputs`` was decided and its decisions committed."""
        self._seen, self._decided_s, self._undecided = inputs, now, False
