"""Declared targets against the database (``store/targets.py``, ``store/attainment.py``) on SQLite and
PostgreSQL: a known month of segments and jobs against hand-computed shares, floors and waits, met,
missed and no data, centre-wide and in one program; a missed closed period told once, to the staff;
bad targets refused with nothing stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gpucommons.errors import ConflictError, InvalidRequestError, NotFoundError
from gpucommons.store import awards
from gpucommons.store.attainment import MET, MISSED, NO_DATA, attainments, latest_closed_period
from gpucommons.store.base import count_rows
from gpucommons.store.calls import create_program
from gpucommons.store.jobs import JobRow
from gpucommons.store.lifecycle import LifecycleOptions, run_lifecycle
from gpucommons.store.notices import NoticeRow
from gpucommons.store.reports import parse_period
from gpucommons.store.targets import TargetRow, TargetSpec, create_target
from gpucommons.store.tenancy import create_institution, create_project, create_user, set_membership
from gpucommons.store.usage import UsageRow

DECLARED = datetime(2026, 3, 1, tzinfo=UTC)


def at(day: str, hour: int = 0) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


# (project, submitted, segments as (start, end, GPU-hours), awarded): alpha is KAIST's (a university
# outside the capital), beta Seoul AI's (a startup in the capital), gamma Busan Robotics' (an SME
# outside the capital). alpha and gamma run under program "call", beta unawarded.
JOBS = [
    ("alpha", at("2026-03-02"), [(at("2026-03-02", 2), at("2026-03-02", 12), 40.0)]),  # waited 2 h
    # preempted after 2 h and restarted 4 h later: 12 h in the system, 4 h running, waited 8 h
    ("alpha", at("2026-03-10"), [(at("2026-03-10", 4), at("2026-03-10", 6), 10.0),
                                 (at("2026-03-10", 10), at("2026-03-10", 12), 10.0)]),
    ("beta", at("2026-03-05"), [(at("2026-03-06"), at("2026-03-06", 4), 30.0)]),  # waited 24 h
    ("gamma", at("2026-03-20"), [(at("2026-03-20", 1), at("2026-03-20", 3), 10.0)]),  # waited 1 h
    ("beta", at("2026-03-30"), [(at("2026-03-31", 20), at("2026-04-01", 4), 100.0)]),  # ends in April
]  # fmt: skip
# March: alpha 60, beta 30, gamma 10 GPU-hours (university 60 %, startup 30 %, SME 10 %; outside the
# capital 70 %); program "call": alpha 60 + gamma 10. April: beta's 100 only.


def seed(session: Session) -> dict[str, int]:
    """The history above, a job of alpha cancelled before it ran, and the staff with their addresses."""
    create_user(session, "ops", "admin", "ops@commons.example")
    create_user(session, "judge", "reviewer", "judge@commons.example")
    pi = create_user(session, "pi", "user", "pi@alpha.example")
    program = create_program(session, name="call", model="H100", capacity_gpus=16, duration_days=90)
    projects = {}
    for name, (inst, kind, region) in {
        "alpha": ("KAIST", "university", "non_capital"),
        "beta": ("Seoul AI", "startup", "capital"),
        "gamma": ("Busan Robotics", "sme", "non_capital"),
    }.items():
        institution = create_institution(session, inst, kind, region)
        projects[name] = create_project(session, name, institution.id).id
    set_membership(session, projects["alpha"], pi.id, "pi")
    award_of = {}
    for name in ("alpha", "gamma"):
        terms = awards.AwardTerms(project_id=projects[name], program_id=program.id, guaranteed_gpus=8)
        award_of[name] = awards.create_award(session, terms, DECLARED).id
    never_ran: tuple[str, datetime, list[tuple[datetime, datetime, float]]] = ("alpha", at("2026-03-01"), [])
    for project, submitted, segments in [*JOBS, never_ran]:
        job = JobRow(
            project_id=projects[project],
            user_id=pi.id,
            command=["train"],
            gpus=8,
            time_limit_s=86_400.0,
            submitted_at=submitted,
            ended_at=segments[-1][1] if segments else at("2026-03-03"),
            state="finished" if segments else "cancelled",
            award_id=award_of.get(project),
            attained_gpu_s=sum(8 * (end - start).total_seconds() for start, end, _ in segments),
        )
        session.add(job)
        session.flush()
        for start, end, hours in segments:
            session.add(
                UsageRow(
                    job_id=job.id,
                    project_id=job.project_id,
                    award_id=job.award_id,
                    started_at=start,
                    ended_at=end,
                    gpus=8,
                    model="H100",
                    gpu_hours=hours,
                    energy_kwh=0.0,
                    cost_krw=0,
                    co2_kg=0.0,
                    flops=0.0,
                )
            )
    session.flush()
    return {"program": program.id, **projects}


def declare(session: Session, program_id: int) -> dict[str, int]:
    specs = [
        TargetSpec("startups", "share", "kind", "startup", 15.0),
        TargetSpec("outside-capital", "share", "region", "non_capital", 80.0),
        TargetSpec("academia-wait", "wait", "kind", "university", 6.0),  # p90 by default
        TargetSpec("sme-in-call", "share", "kind", "sme", 10.0, program_id=program_id),
        TargetSpec("capital-floor", "gpu_hours", "region", "capital", 50.0),
        TargetSpec("sme-median-wait", "wait", "kind", "sme", 2.0, percentile=50),
        TargetSpec("consortia-wait", "wait", "kind", "consortium", 24.0),
        TargetSpec("quarterly-startups", "share", "kind", "startup", 15.0, every="quarter"),
    ]
    return {spec.name: create_target(session, spec, DECLARED).id for spec in specs}


def test_attainment_of_a_known_history(session: Session) -> None:
    ids = seed(session)
    declare(session, ids["program"])
    march = {a.name: a for a in attainments(session, parse_period("2026-03"), DECLARED)}
    got = {name: (a.status, a.value, a.margin) for name, a in march.items()}
    assert got == {
        "startups": (MET, pytest.approx(30.0), pytest.approx(15.0)),
        "outside-capital": (MISSED, pytest.approx(70.0), pytest.approx(-10.0)),
        # waits 2 h and 8 h: the 90th percentile lies 0.9 of the way from one to the other
        "academia-wait": (MISSED, pytest.approx(7.4), pytest.approx(-1.4)),
        "sme-in-call": (MET, pytest.approx(100 * 10 / 70), pytest.approx(100 * 10 / 70 - 10)),
        "capital-floor": (MISSED, 30.0, -20.0),
        "sme-median-wait": (MET, pytest.approx(1.0), pytest.approx(1.0)),
        "consortia-wait": (NO_DATA, None, None),
        "quarterly-startups": (MET, pytest.approx(30.0), pytest.approx(15.0)),
    }
    assert (march["startups"].group_gpu_hours, march["startups"].scope_gpu_hours) == (30.0, 100.0)
    assert (march["sme-in-call"].group_gpu_hours, march["sme-in-call"].scope_gpu_hours) == (10.0, 70.0)
    assert march["academia-wait"].jobs == 2  # the job cancelled before it ran is no wait
    assert march["consortia-wait"].met is None and march["startups"].met is True
    april = {a.name: (a.status, a.value) for a in attainments(session, parse_period("2026-04"), DECLARED)}
    assert april["startups"][0] == MET and april["startups"][1] == pytest.approx(100.0)
    assert april["capital-floor"] == (MET, 100.0)
    assert april["academia-wait"] == (NO_DATA, None)
    assert april["sme-in-call"] == (NO_DATA, None)  # nothing charged to the program in April
    # Without a period, each target is judged over its own latest closed one.
    latest = {a.name: a.period for a in attainments(session, None, at("2026-04-15"))}
    assert (latest["startups"], latest["quarterly-startups"]) == ("2026-03", "2026-Q1")
    assert latest_closed_period("week", at("2026-04-01")).label == "2026-W13"


def test_a_missed_period_is_told_once_to_the_staff(session: Session) -> None:
    ids = seed(session)
    targets = declare(session, ids["program"])
    late = create_target(
        session, TargetSpec("late", "share", "region", "non_capital", 99.0), at("2026-04-01", 1)
    )
    april_2 = at("2026-04-02", 9)
    first = run_lifecycle(session, april_2, LifecycleOptions())
    again = run_lifecycle(session, april_2 + timedelta(hours=1), LifecycleOptions())
    query = select(NoticeRow).where(NoticeRow.kind == "target_missed").order_by(NoticeRow.id)
    notices = list(session.scalars(query))
    missed = ("outside-capital", "academia-wait", "capital-floor")  # March; "late" was not declared then
    assert [n.key for n in notices] == [f"target_missed:target-{targets[name]}:2026-03" for name in missed]
    assert {n.id for n in notices} <= set(first.notices) and not set(again.notices) & {n.id for n in notices}
    assert all(n.project_id is None and n.award_id is None for n in notices)
    assert notices[0].recipient_list == ["ops@commons.example", "judge@commons.example"]
    assert "70.00 % against 80.00 %, short by 10.00 %" in notices[0].body
    assert "missed in 2026-03" in notices[0].subject
    assert late.id not in {int(n.key.split(":")[1].removeprefix("target-")) for n in notices}


BAD = [
    (TargetSpec("t", "cap", "kind", "startup", 15.0), InvalidRequestError, "unknown target kind 'cap'"),
    (TargetSpec("t", "share", "site", "seoul", 15.0), InvalidRequestError, "cannot group by 'site'"),
    (TargetSpec("t", "wait", "model", "H100", 24.0), InvalidRequestError, "a wait target cannot group by"),
    (TargetSpec("t", "share", "kind", "unicorn", 15.0), InvalidRequestError, "unknown kind 'unicorn'"),
    (TargetSpec("t", "share", "region", "north", 15.0), InvalidRequestError, "unknown region 'north'"),
    (TargetSpec("t", "share", "project", "zeta", 15.0), InvalidRequestError, "no project is called 'zeta'"),
    (TargetSpec("t", "share", "program", "call", 9.0, program_id=1), InvalidRequestError, "by program"),
    (TargetSpec("t", "share", "kind", "startup", 150.0), InvalidRequestError, "within 0..100 %, got 150"),
    (TargetSpec("t", "share", "kind", "startup", -1.0), InvalidRequestError, "within 0..100 %, got -1"),
    (TargetSpec("t", "gpu_hours", "kind", "sme", -5.0), InvalidRequestError, "within 0..1e+09 GPU-hours"),
    (TargetSpec("t", "share", "kind", "sme", 5.0, percentile=90), InvalidRequestError, "only a wait"),
    (TargetSpec("t", "wait", "kind", "sme", 5.0, percentile=0), InvalidRequestError, "within 1..100, got 0"),
    (TargetSpec("t", "share", "kind", "sme", 5.0, every="day"), InvalidRequestError, "got 'day'"),
    (TargetSpec("t", "share", "kind", "sme", 5.0, program_id=999), NotFoundError, "program 999 not found"),
    (TargetSpec("startups", "share", "kind", "sme", 5.0), ConflictError, "target 'startups' already"),
]


def test_a_bad_target_is_refused_and_nothing_is_stored(session: Session) -> None:
    seed(session)
    create_target(session, TargetSpec("startups", "share", "kind", "startup", 15.0), DECLARED)
    for spec, error, said in BAD:
        with pytest.raises(error) as refused:
            create_target(session, spec, DECLARED)
        assert said in str(refused.value) and "\n" not in str(refused.value), spec
        assert count_rows(session, TargetRow) == 1, spec
