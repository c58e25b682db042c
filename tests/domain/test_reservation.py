"""``Reservation``: what is refused when it is made, and ``window_at`` for one-off and recurring
reservations (the occurrence in force at an instant, else the next, else none)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpucommons.domain.reservation import Reservation

H = 3600.0


def test_a_one_off_reservation_is_in_force_until_it_ends() -> None:
    res = Reservation(7, "consortium", 1024, 14 * H, 20 * H, model="H100")
    assert res.duration_s == 6 * H
    assert res.window_at(0.0) == (14 * H, 20 * H)  # to come
    assert res.window_at(14 * H) == (14 * H, 20 * H)  # its first instant
    assert res.window_at(20 * H - 1) == (14 * H, 20 * H)
    assert res.window_at(20 * H) is None  # its end is not part of it
    assert res.window_at(1e9) is None


def test_a_nightly_reservation_gives_the_occurrence_in_force_or_the_next() -> None:
    nightly = Reservation(1, "t", 8, 0.0, 6 * H, every_s=24 * H)
    assert nightly.window_at(3 * H) == (0.0, 6 * H)
    assert nightly.window_at(6 * H) == (24 * H, 30 * H)  # between occurrences: the next
    assert nightly.window_at(23 * H) == (24 * H, 30 * H)
    assert nightly.window_at(24 * H) == (24 * H, 30 * H)
    assert nightly.window_at(10 * 24 * H + 1) == (10 * 24 * H, 10 * 24 * H + 6 * H)


def test_before_the_first_occurrence_the_first_is_next() -> None:
    weekly = Reservation(2, "t", 8, 100 * H, 124 * H, every_s=168 * H)
    assert weekly.window_at(0.0) == (100 * H, 124 * H)


def test_occurrences_end_a_recurring_reservation() -> None:
    twice = Reservation(3, "t", 8, 0.0, 6 * H, every_s=24 * H, occurrences=2)
    assert twice.window_at(25 * H) == (24 * H, 30 * H)
    assert twice.window_at(30 * H) is None
    assert twice.window_at(1e9) is None


def test_back_to_back_occurrences_leave_no_gap() -> None:
    always = Reservation(4, "t", 8, 0.0, 24 * H, every_s=24 * H)
    assert always.window_at(24 * H) == (24 * H, 48 * H)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"gpus": 0}, "gpus must be at least 1"),
        ({"end_s": 0.0}, "must end after it starts"),
        ({"within": "rack"}, "within must be one of"),
        ({"every_s": 1.0}, "repeats before an occurrence ends"),
        ({"every_s": 7200.0, "occurrences": 0}, "occurrences must be at least 1"),
    ],
)
def test_what_cannot_be_a_reservation(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"id": 9, "tenant": "t", "gpus": 8, "start_s": 0.0, "end_s": 3600.0}
    fields.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Reservation(**fields)  # type: ignore[arg-type]


@given(
    start_h=st.integers(0, 500),
    duration_h=st.integers(1, 24),
    gap_h=st.integers(0, 200),
    occurrences=st.one_of(st.none(), st.integers(1, 5)),
    now_h=st.floats(0, 2_000, allow_nan=False),
)
def test_window_at_is_the_first_occurrence_not_yet_over(
    start_h: int, duration_h: int, gap_h: int, occurrences: int | None, now_h: float
) -> None:
    every_h = duration_h + gap_h
    res = Reservation(
        1, "t", 8, start_h * H, (start_h + duration_h) * H, every_s=every_h * H, occurrences=occurrences
    )
    now = now_h * H
    count = occurrences if occurrences is not None else 10_000
    windows = [((start_h + k * every_h) * H, (start_h + k * every_h + duration_h) * H) for k in range(count)]
    expected = next((w for w in windows if w[1] > now), None)
    assert res.window_at(now) == expected
