"""Event heap ordered by (time, priority, seq): equal times resolve by priority, then insertion order,
so a run is deterministic whatever the payloads are."""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class EventQueue(Generic[T]):
    _heap: list[tuple[float, int, int, T]] = field(default_factory=list)
    _seq: int = 0

    def push(self, time_s: float, payload: T, priority: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (time_s, priority, self._seq, payload))

    def peek_time(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop(self) -> tuple[float, T]:
        time_s, _, _, payload = heapq.heappop(self._heap)
        return time_s, payload

    def __len__(self) -> int:
        return len(self._heap)
