"""Reservations: whole nodes of one model held for one tenant from a start time for a duration, so a
foundation-model gang can start at a planned time instead of waiting for nodes to drain by chance.

A reservation is pure data; the admission stage ``policy/constraints/reservations.py`` decides what
it means for each cycle (drain before the start, keep others off during it, lend idle reserved GPUs
to short preemptible jobs where ``lend_idle``). The live store fills it from the database, the
simulator from a scenario file; both hand the same value to the policy.
"""

from __future__ import annotations

from dataclasses import dataclass

WITHIN = ("", "nvlink", "block")
"""Where its nodes must lie together: anywhere (""), inside one NVLink domain, or one network block."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """``gpus`` GPUs of ``model`` (whole nodes; ``None``: any model) for ``tenant`` from ``start_s``
    to ``end_s`` (policy seconds). ``every_s`` repeats it (e.g. 86,400 for nightly, 604,800 for
    weekly) ``occurrences`` times (``None``: without end); ``lend_idle`` lets short preemptible jobs
    of other tenants borrow reserved GPUs the tenant leaves idle during it."""

    id: int
    tenant: str
    gpus: int
    start_s: float
    end_s: float
    model: str | None = None
    within: str = ""
    lend_idle: bool = False
    every_s: float | None = None
    occurrences: int | None = None

    def __post_init__(self) -> None:
        if self.gpus < 1:
            raise ValueError(f"reservation {self.id}: gpus must be at least 1, got {self.gpus}")
        if self.end_s <= self.start_s:
            raise ValueError(f"reservation {self.id}: it must end after it starts")
        if self.within not in WITHIN:
            raise ValueError(f"reservation {self.id}: within must be one of {WITHIN}, got {self.within!r}")
        if self.every_s is not None and self.every_s < self.end_s - self.start_s:
            raise ValueError(f"reservation {self.id}: it repeats before an occurrence ends")
        if self.occurrences is not None and self.occurrences < 1:
            raise ValueError(f"reservation {self.id}: occurrences must be at least 1")

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def window_at(self, now_s: float) -> tuple[float, float] | None:
        """The occurrence in force at ``now_s`` or the next one after it, as ``(start_s, end_s)``;
        ``None`` when every occurrence has ended."""
        if self.every_s is None:
            return (self.start_s, self.end_s) if now_s < self.end_s else None
        k = max(0, int((now_s - self.start_s) // self.every_s))
        if self.start_s + k * self.every_s + self.duration_s <= now_s:
            k += 1
        if self.occurrences is not None and k >= self.occurrences:
            return None
        start_s = self.start_s + k * self.every_s
        return start_s, start_s + self.duration_s
