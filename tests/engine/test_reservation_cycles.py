"""Reservations in the live engine's snapshot, on SQLite and PostgreSQL: the live store hands the policy
every reservation still to end, with its project's name as tenant and its times in policy seconds; and
a cycle that would otherwise be skipped (design note 0013) is decided at once when a reservation is
made or cancelled, or when one of its occurrences opens or closes."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from gpucommons.clusterfile import load_cluster
from gpucommons.domain.reservation import Reservation
from gpucommons.engine import cycle as engine_cycle
from gpucommons.policy.cycle import schedule as real_schedule
from gpucommons.policy.decisions import CycleResult
from gpucommons.policy.protocols import PolicyConfig
from gpucommons.policy.snapshot import Snapshot
from gpucommons.store.base import to_dt
from gpucommons.store.reservations import ReservationSpec, cancel_reservation, create_reservation
from gpucommons.store.tenancy import create_user
from tests.engine.conftest import World
from tests.engine.test_backend_events import ScriptedBackend, engine_with

pytestmark = pytest.mark.timeout(60)

WINDOW_S = 20.0  # shorter than ``DECIDE_AT_LEAST_EVERY_S``: only the window can make a cycle decide


def test_reservations_reach_the_policy_and_their_changes_are_decided_at_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[Reservation, ...]] = []

    def decide(snapshot: Snapshot, config: PolicyConfig, now: float) -> CycleResult:
        seen.append(snapshot.reservations)
        return real_schedule(snapshot, config, now)

    monkeypatch.setattr(engine_cycle, "schedule", decide)
    t0 = float(int(time.time()))
    clock = [t0]
    engine = engine_with(world, ScriptedBackend(), clock=lambda: clock[0])

    def decided() -> bool:
        before = len(seen)
        report = engine.step()
        assert report.cycle_skipped == (len(seen) == before)
        return len(seen) > before

    def reserve(start_s: float) -> int:
        with world.sessions() as s:
            admin = create_user(s, f"ops-{start_s}", "admin")
            spec = ReservationSpec(world.project_id, "H100", 8, to_dt(start_s), WINDOW_S)
            row = create_reservation(s, load_cluster("demo"), spec, admin.id, to_dt(clock[0]))
            s.commit()
            return row.id

    assert decided()
    assert not decided()  # nothing changed
    first = reserve(t0 + 10)
    assert decided() and seen[-1] == (Reservation(first, "acme", 8, t0 + 10, t0 + 10 + WINDOW_S, "H100"),)
    clock[0] = t0 + 5
    assert not decided()
    clock[0] = t0 + 10  # its window opens
    assert decided()
    clock[0] = t0 + 11
    assert not decided()
    clock[0] = t0 + 10 + WINDOW_S  # and closes: the reservation is over
    assert decided() and not seen[-1]
    clock[0] += 1
    assert not decided()
    second = reserve(clock[0] + 3_600)
    assert decided() and [r.id for r in seen[-1]] == [second]
    assert not decided()
    with world.sessions() as s:
        cancel_reservation(s, second, to_dt(clock[0]) + timedelta(seconds=1))
        s.commit()
    assert decided() and not seen[-1]
    assert not decided()
