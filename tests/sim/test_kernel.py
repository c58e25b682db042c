"""The event heap: ordered by (time, priority, insertion order), whatever the payloads are."""

from __future__ import annotations

from gpucommons.sim.kernel import EventQueue


def drain(queue: EventQueue[str]) -> list[tuple[float, str]]:
    out = []
    while len(queue):
        out.append(queue.pop())
    return out


def test_time_then_priority_then_insertion_order() -> None:
    queue: EventQueue[str] = EventQueue()
    queue.push(5.0, "late-a")
    queue.push(1.0, "early")
    queue.push(5.0, "late-urgent", priority=-1)
    queue.push(5.0, "late-b")
    queue.push(5.0, "late-lazy", priority=1)
    queue.push(3.0, "middle")
    assert [p for _, p in drain(queue)] == ["early", "middle", "late-urgent", "late-a", "late-b", "late-lazy"]


def test_payloads_are_never_compared() -> None:
    queue: EventQueue[object] = EventQueue()
    queue.push(1.0, {"unorderable": 1})
    queue.push(1.0, {"unorderable": 2})
    assert queue.pop() == (1.0, {"unorderable": 1})
    assert queue.pop() == (1.0, {"unorderable": 2})


def test_peek_and_len() -> None:
    queue: EventQueue[str] = EventQueue()
    assert queue.peek_time() is None and len(queue) == 0
    queue.push(7.5, "x")
    queue.push(2.5, "y")
    assert queue.peek_time() == 2.5 and len(queue) == 2
    assert queue.pop() == (2.5, "y")
    assert queue.peek_time() == 7.5 and len(queue) == 1
