"""The lifecycle step against the database (``store/lifecycle.py``, ``store/notices.py``) on SQLite and
PostgreSQL: budgets taken back and their alerts, a late step evaluating one period once, a racing step
that finds the period claimed, rules that never warn or never reclaim, and who a notice goes to."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gpucommons.errors import InvalidRequestError
from gpucommons.store import awards
from gpucommons.store.awards import AwardRow, AwardTerms, ReclaimRow
from gpucommons.store.base import count_rows, make_engine, session_factory
from gpucommons.store.calls import get_program
from gpucommons.store.lifecycle import LifecycleOptions, reclaim_rule, run_lifecycle, set_reclaim_rule
from gpucommons.store.notices import NoticeDraft, NoticeRow, list_notices, project_recipients, queue_notice
from tests.lifecycle_world import EMAILS, T0, Call, day, meter, seed_call

OPTIONS = LifecycleOptions(expiry_warning_days=14)


def _budget_award(session: Session, call: Call, project: str, hours: float) -> AwardRow:
    award = awards.create_award(
        session, AwardTerms(call.projects[project], call.program_id, gpu_hours_budget=hours), T0
    )
    awards.activate_award(session, award.id, T0)
    return award


def _kinds(session: Session, award_id: int) -> list[tuple[str, str]]:
    query = select(NoticeRow.kind, NoticeRow.key).where(NoticeRow.award_id == award_id).order_by(NoticeRow.id)
    return [(kind, key.rsplit(":", 1)[-1]) for kind, key in session.execute(query)]


def test_a_budget_loses_the_fraction_of_what_it_has_left_and_alerts_at_50_and_80(session: Session) -> None:
    call = seed_call(session)
    award = _budget_award(session, call, "alpha", 1000.0)
    # 8 GPUs for 11.25 h: 90 GPU-hours, 36 % of the 250 planned by day 30 -> 55 % of 910 left.
    meter(session, call, "alpha", award.id, 8, day(1), timedelta(hours=11.25))
    [reclaim] = run_lifecycle(session, day(30), OPTIONS).reclaims
    assert (reclaim.reclaimed_gpus, reclaim.period) == (0, 1)
    assert reclaim.reclaimed_gpu_hours == pytest.approx(0.55 * 910)
    assert award.gpu_hours_budget == pytest.approx(1000 - 0.55 * 910)
    assert award.status == "active"
    # Using 360 of the 499.5 left crosses 50 % and 80 % of the budget: one notice each, once.
    meter(session, call, "alpha", award.id, 16, day(31), timedelta(hours=22.5))
    run_lifecycle(session, day(32), OPTIONS)
    run_lifecycle(session, day(33), OPTIONS)
    assert [k for k in _kinds(session, award.id) if k[0] == "budget_used"] == [
        ("budget_used", "50%"),
        ("budget_used", "80%"),
    ]


def test_a_rule_taking_everything_from_an_unused_budget_reclaims_the_award(session: Session) -> None:
    call = seed_call(session)
    award = _budget_award(session, call, "beta", 100.0)
    set_reclaim_rule(session, call.program_id, [[1.0, 1.0]], 30, 0)
    run_lifecycle(session, day(30), OPTIONS)
    assert (award.gpu_hours_budget, award.status) == (0.0, "reclaimed")
    assert ("reclaim_done", "period-1") in _kinds(session, award.id)


def test_a_late_step_evaluates_the_latest_period_once(session: Session) -> None:
    call = seed_call(session)
    [alpha, beta] = awards.auto_award(session, call.program_id, T0)
    for award in (alpha, beta):
        awards.activate_award(session, award.id, T0)
    meter(session, call, "alpha", alpha.id, 16, day(0), timedelta(days=80))
    # Down from day 0 to day 95: periods 1 to 3 ended; only period 3 is evaluated, once.
    report = run_lifecycle(session, day(95), OPTIONS)
    assert [(r.award_id, r.period, r.reclaimed_gpus) for r in report.reclaims] == [(beta.id, 3, 8)]
    assert (alpha.reclaim_checked_period, beta.reclaim_checked_period) == (3, 3)
    assert run_lifecycle(session, day(95), OPTIONS).reclaims == []
    assert run_lifecycle(session, day(100), OPTIONS).reclaims == []
    assert count_rows(session, ReclaimRow) == 1


def test_a_racing_step_finds_the_period_claimed(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    sessions = session_factory(engine)
    try:
        with sessions() as s:
            call = seed_call(s)
            [_alpha, beta] = awards.auto_award(s, call.program_id, T0)
            for award in awards.list_awards(s):
                awards.activate_award(s, award.id, T0)
            s.commit()
        with sessions() as late, sessions() as first:
            stale = late.get(AwardRow, beta.id)  # read before the other step commits
            assert stale is not None and stale.reclaim_checked_period == 0
            late.commit()  # rows stay loaded (and stale): sessions do not expire on commit
            assert len(run_lifecycle(first, day(30), OPTIONS).reclaims) == 2
            first.commit()
            assert run_lifecycle(late, day(30), OPTIONS).reclaims == []
            late.commit()
        with sessions() as s:
            assert count_rows(s, ReclaimRow) == 2
            row = s.get(AwardRow, beta.id)
            assert row is not None and row.guaranteed_gpus == 8
    finally:
        engine.dispose()


def test_no_warning_with_zero_days_and_no_reclaim_with_an_empty_table(session: Session) -> None:
    call = seed_call(session)
    [alpha, _beta] = awards.auto_award(session, call.program_id, T0)
    awards.activate_award(session, alpha.id, T0)
    set_reclaim_rule(session, call.program_id, None, 30, 0)
    run_lifecycle(session, day(29.9), OPTIONS)
    assert ("reclaim_warning", "period-1") not in _kinds(session, alpha.id)
    set_reclaim_rule(session, call.program_id, None, 30, 7)  # the same step warns with a week's notice
    run_lifecycle(session, day(29.9), OPTIONS)
    assert ("reclaim_warning", "period-1") in _kinds(session, alpha.id)
    set_reclaim_rule(session, call.program_id, [], 30, 7)
    assert run_lifecycle(session, day(60), OPTIONS).reclaims == []
    assert alpha.guaranteed_gpus == 16


def test_a_rule_is_stored_whole_or_not_at_all(session: Session) -> None:
    call = seed_call(session)
    program = get_program(session, call.program_id)
    for table, period, warning in (([[0.2, 0.5], [0.4, 0.6]], 30, 7), ([[0.2, 0.5]], 30, 30), (None, 0, 0)):
        with pytest.raises(InvalidRequestError):
            set_reclaim_rule(session, call.program_id, table, period, warning)
    assert (program.reclaim_table, program.reclaim_period_days, program.reclaim_warning_days) == (None, 30, 7)
    set_reclaim_rule(session, call.program_id, [[0.5, 0.5]], 14, 3)
    rule = reclaim_rule(program)
    assert (rule.table.to_json(), rule.schedule.period_days, rule.schedule.warning_days) == (
        [[0.5, 0.5]],
        14,
        3,
    )


def test_a_notice_goes_to_the_pi_then_the_members_and_is_queued_once(session: Session) -> None:
    call = seed_call(session)
    alpha = call.projects["alpha"]
    assert project_recipients(session, alpha) == list(EMAILS["alpha"])
    assert project_recipients(session, call.projects["delta"]) == []
    draft = NoticeDraft("target_missed", alpha, None, "2026-Q1", "subject", "body")
    first = queue_notice(session, draft, T0)
    assert first is not None and first.key == f"target_missed:project-{alpha}:2026-Q1"
    assert first.recipient_list == list(EMAILS["alpha"])
    assert queue_notice(session, draft, T0 + timedelta(days=1)) is None
    assert [n.id for n in list_notices(session, {alpha})] == [first.id]
    assert list_notices(session, {call.projects["beta"]}) == []
