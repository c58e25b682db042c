"""Award lifecycle against the database: hand awards checked against capacity and caps, auto-award,
expiry by time and reclaim of unused guaranteed GPUs (which frees capacity for the next round)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from gpucommons.errors import ConflictError, InvalidRequestError
from gpucommons.store import awards
from gpucommons.store.awards import AwardRow
from gpucommons.store.base import count_rows
from gpucommons.store.calls import create_program, score_proposal, submit_proposal
from gpucommons.store.tenancy import create_institution, create_project, create_user

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _world(session: Session, cap_per_org: int | None = None) -> tuple[int, list[int]]:
    """A 32-GPU program of whole 8-GPU servers and three projects (two institutions in the capital)."""
    seoul = create_institution(session, "Seoul U", "university", "capital")
    busan = create_institution(session, "Busan U", "university", "non_capital")
    admin = create_user(session, "admin", "admin")
    program = create_program(
        session,
        name="call",
        model="H200",
        capacity_gpus=32,
        unit_gpus=8,
        cap_per_org_gpus=cap_per_org,
        non_capital_bonus=5.0,
        duration_days=120,
        reclaim_below_utilization=0.3,
        reclaim_after_days=14,
    )
    projects = [
        create_project(session, "a", seoul.id).id,
        create_project(session, "b", seoul.id).id,
        create_project(session, "c", busan.id).id,
    ]
    for pid, gpus, score in zip(projects, (24, 16, 16), (90, 80, 78), strict=True):
        prop = submit_proposal(session, program.id, pid, admin.id, gpus, "", T0)
        score_proposal(session, prop.id, admin.id, score, "", T0)
    return program.id, projects


def test_auto_award_applies_bonus_cap_and_capacity(session: Session) -> None:
    program_id, (a, _b, c) = _world(session, cap_per_org=24)
    made = awards.auto_award(session, program_id, T0)
    got = {row.project_id: row.guaranteed_gpus for row in made}
    # a: 90 -> 24 (cap reached for Seoul U); c: 78 + 5 = 83 -> 8 left of 32; b: capped out.
    assert got == {a: 24, c: 8}
    assert awards.committed_gpus(session, program_id) == 32
    assert all(row.status == "pending" and row.ends_at == T0 + timedelta(days=120) for row in made)


def test_hand_award_refuses_over_capacity_and_partial_units(session: Session) -> None:
    program_id, (a, _, c) = _world(session)
    awards.create_award(session, awards.AwardTerms(a, program_id, guaranteed_gpus=24), T0)
    with pytest.raises(ConflictError, match="8 GPUs left"):
        awards.create_award(session, awards.AwardTerms(c, program_id, guaranteed_gpus=16), T0)
    with pytest.raises(InvalidRequestError, match="multiple"):
        awards.create_award(session, awards.AwardTerms(c, program_id, guaranteed_gpus=4), T0)


def test_expire_then_extend_brings_an_award_back(session: Session) -> None:
    program_id, (a, _, _) = _world(session)
    row = awards.create_award(session, awards.AwardTerms(a, program_id, guaranteed_gpus=8), T0)
    awards.activate_award(session, row.id, T0)
    assert awards.expire_awards(session, T0 + timedelta(days=119)) == []
    assert [r.id for r in awards.expire_awards(session, T0 + timedelta(days=120))] == [row.id]
    assert awards.committed_gpus(session, program_id) == 0
    awards.extend_award(session, row.id, T0 + timedelta(days=200), T0 + timedelta(days=121))
    assert row.status == "active"
    assert awards.active_awards(session, T0 + timedelta(days=150)) == [row]


def test_reclaim_takes_back_unused_units_after_the_window(session: Session) -> None:
    program_id, (a, b, _) = _world(session)
    big = awards.create_award(session, awards.AwardTerms(a, program_id, guaranteed_gpus=24), T0)
    busy = awards.create_award(session, awards.AwardTerms(b, program_id, guaranteed_gpus=8), T0)
    for row in (big, busy):
        awards.activate_award(session, row.id, T0)
    usage = {big.id: 0.1, busy.id: 0.9}
    assert awards.reclaim_unused(session, T0 + timedelta(days=13), usage) == []
    records = awards.reclaim_unused(session, T0 + timedelta(days=14), usage)
    assert [(r.award_id, r.reclaimed_gpus) for r in records] == [(big.id, 16)]
    assert (big.guaranteed_gpus, big.reclaimed_gpus, big.status) == (8, 16, "active")
    assert awards.committed_gpus(session, program_id) == 16
    # Not again until another full window has passed; then an idle award is reclaimed entirely.
    assert awards.reclaim_unused(session, T0 + timedelta(days=20), {big.id: 0.0}) == []
    awards.reclaim_unused(session, T0 + timedelta(days=28), {big.id: 0.0})
    assert (big.guaranteed_gpus, big.status) == (0, "reclaimed")
    assert count_rows(session, AwardRow) == 2
