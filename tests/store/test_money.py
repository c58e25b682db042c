"""Money in whole won through the store: the README walk-through's program charges list price, an
explicit 0.0 discount stays 0.0, a job cut into segments is charged its whole quote, balances and
money columns hold integers, and fractions of a won are refused."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from gpucommons.clusterfile import load_cluster
from gpucommons.domain.cluster import Cluster
from gpucommons.errors import InvalidRequestError
from gpucommons.metering import Pricing, gpu_seconds, quote_krw, rate_for
from gpucommons.service.schemas.allocation import ProgramCreate
from gpucommons.service.schemas.jobs import BalanceRead
from gpucommons.store import awards as award_repo
from gpucommons.store.calls import ProgramRow, create_program, submit_proposal
from gpucommons.store.jobs import AllocationRow, JobRequest, JobRow, submit_job
from gpucommons.store.tenancy import create_institution, create_project, create_user, set_membership
from gpucommons.store.usage import UsageRow, balances, end_segment

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
README = Path(__file__).resolve().parents[2] / "README.md"


@dataclass
class Commons:
    session: Session
    cluster: Cluster
    project_id: int
    user_id: int
    award_id: int


def walk_through() -> str:
    """The commands of the README's five-minute walk-through (the first code block of "Run the
    commons")."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Run the commons") :]
    return section[section.index("```bash") : section.index("```\n", section.index("```bash") + 7)]


def seed(session: Session, program: dict[str, Any], youth: bool = True) -> Commons:
    """The README walk-through up to the award: a youth startup outside the capital, project
    ``vision`` with the admin as PI, the program, a proposal for 8 GPUs and an active 500 GPU-hour
    award. The program goes through the API's schema with the CLI's defaults, as ``gpuc program
    create`` sends it."""
    inst = create_institution(session, "Busan Vision Startup", "startup", "non_capital", youth)
    project = create_project(session, "vision", inst.id)
    admin = create_user(session, "admin", "admin")
    set_membership(session, project.id, admin.id, "pi")
    body = ProgramCreate.model_validate({"discounts": {}, "youth_startup_extra_discount": 0.0, **program})
    row = create_program(session, **body.model_dump())
    proposal = submit_proposal(session, row.id, project.id, admin.id, 8, "vision models", T0)
    terms = award_repo.AwardTerms(project.id, row.id, proposal.id, gpu_hours_budget=500.0, guaranteed_gpus=8)
    award = award_repo.create_award(session, terms, T0)
    award_repo.activate_award(session, award.id, T0)
    session.flush()
    return Commons(session, load_cluster("demo"), project.id, admin.id, award.id)


README_PROGRAM = {"name": "2026-call", "model": "H100", "capacity_gpus": 16, "unit_gpus": 8}


def submit(commons: Commons, gpus: int = 2) -> JobRow:
    request = JobRequest(gpus=gpus, command=["python3", "-c", "print(1)"], time_limit="10m")
    job, _ = submit_job(commons.session, commons.cluster, commons.project_id, commons.user_id, request, T0)
    return job


def run_segment(commons: Commons, job: JobRow, started_at: datetime, held: timedelta) -> UsageRow:
    """Start ``job`` on H100 node 0 at ``started_at`` and end the segment ``held`` later."""
    job.state, job.started_at, job.award_id, job.backend_ref = "running", started_at, commons.award_id, "ref"
    commons.session.add_all(
        AllocationRow(job_id=job.id, node_index=0, node_name="h100-1", gpu_index=g) for g in range(job.gpus)
    )
    commons.session.flush()
    usage = end_segment(commons.session, commons.cluster, job, started_at + held)
    assert usage is not None
    commons.session.flush()
    return usage


def test_readme_walk_through_is_what_the_test_reproduces() -> None:
    commands = walk_through()
    program_line = next(line for line in commands.splitlines() if line.startswith("gpuc program create"))
    assert "--price-krw-per-gpu-hour 2000" in program_line
    assert "--discounts" not in program_line and "--youth-startup-extra-discount" not in program_line
    assert re.search(r"institution create .*--kind startup --region non_capital --youth-startup", commands)
    assert "gpuc award create --project 1 --program 1 --proposal 1 --gpus 8 --gpu-hours 500" in commands
    assert "gpuc submit --gpus 2 --time 10m" in commands


def test_readme_walk_through_program_charges_exactly_list_price(session: Session) -> None:
    commons = seed(session, {**README_PROGRAM, "price_krw_per_gpu_hour": 2000})
    job = submit(commons)
    usage = run_segment(commons, job, T0, timedelta(minutes=10))  # the job uses its whole 10m
    # 2 GPUs x 1/6 h x 2,000 won = 666.67 won -> 667; the old defaults charged a quarter of it (167).
    assert usage.cost_krw == 667 and isinstance(usage.cost_krw, int)
    assert usage.cost_krw == quote_krw(rate_for(Pricing(2000), "enterprise"), 2 * 600)
    (line,) = balances(session, {commons.project_id})
    assert (line.award_id, line.cost_krw) == (commons.award_id, 667)
    assert BalanceRead.model_validate(line).cost_krw == 667


def test_an_explicit_zero_discount_stays_zero(session: Session) -> None:
    program = {
        **README_PROGRAM,
        "price_krw_per_gpu_hour": 3600,
        "discounts": {"startup": 0.0},
        "youth_startup_extra_discount": 0.0,
    }
    commons = seed(session, program)
    usage = run_segment(commons, submit(commons), T0, timedelta(hours=1))
    assert usage.cost_krw == 2 * 3600  # not halved by a default youth extra


def test_stated_discounts_apply(session: Session) -> None:
    program = {
        **README_PROGRAM,
        "price_krw_per_gpu_hour": 3600,
        "discounts": {"startup": 0.5},
        "youth_startup_extra_discount": 0.5,
    }
    commons = seed(session, program)
    usage = run_segment(commons, submit(commons), T0, timedelta(hours=1))
    assert usage.cost_krw == 2 * 3600 // 4


@pytest.mark.parametrize(
    "spans_us",
    [
        [1_000_000, 1_000_000, 1_000_000],  # 0.28 won each: per-segment rounding would charge 0 in all
        [1_799_999, 1, 1_800_000, 7],
        [123_456_789, 0, 987_654, 3_600_000_001],
    ],
)
def test_a_job_cut_into_segments_is_charged_its_whole_quote(session: Session, spans_us: list[int]) -> None:
    commons = seed(session, {**README_PROGRAM, "price_krw_per_gpu_hour": 1000}, youth=False)
    job = submit(commons, gpus=1)
    start = T0
    for us in spans_us:
        run_segment(commons, job, start, timedelta(microseconds=us))
        job.state, job.started_at = "pending", None  # preempted; restarts later
        start += timedelta(microseconds=us, minutes=5)
    charges = session.scalars(select(UsageRow.cost_krw).where(UsageRow.job_id == job.id)).all()
    whole = sum((gpu_seconds(1, timedelta(microseconds=us)) for us in spans_us), Fraction(0))
    assert sum(charges) == quote_krw(rate_for(Pricing(1000), "startup"), whole)
    assert all(isinstance(c, int) for c in charges)
    session.commit()
    session.expire_all()  # read back from the database: still whole won
    (line,) = balances(session, {commons.project_id})
    assert line.cost_krw == sum(charges) and isinstance(line.cost_krw, int)


def test_integral_floats_are_stored_as_won_and_fractions_refused(session: Session) -> None:
    fields: dict[str, Any] = {"model": "H100", "capacity_gpus": 8, "unit_gpus": 8, "duration_days": 30}
    row = create_program(session, name="float-call", price_krw_per_gpu_hour=1500.0, **fields)
    assert row.price_krw_per_gpu_hour == 1500 and isinstance(row.price_krw_per_gpu_hour, int)
    with pytest.raises(InvalidRequestError, match="price_krw_per_gpu_hour: money is whole won"):
        create_program(session, name="bad-call", price_krw_per_gpu_hour=1500.5, **fields)
    session.commit()
    session.expire_all()
    assert [(p.name, p.price_krw_per_gpu_hour) for p in session.scalars(select(ProgramRow))] == [
        ("float-call", 1500)
    ]


@pytest.mark.parametrize("price", [2000.5, -1, "2,000"])
def test_the_api_schema_refuses_a_price_that_is_not_whole_won(price: object) -> None:
    with pytest.raises(ValidationError):
        ProgramCreate.model_validate({**README_PROGRAM, "price_krw_per_gpu_hour": price})
    body = ProgramCreate.model_validate({**README_PROGRAM, "price_krw_per_gpu_hour": 2000})
    assert body.price_krw_per_gpu_hour == 2000 and isinstance(body.price_krw_per_gpu_hour, int)
