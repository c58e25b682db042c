"""Usage reports (design note 0010) over a known history of two months on both databases: every
aggregate against hand-computed values, the periods, the caller's scope, and bad requests."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from gpucommons.store import awards as award_repo
from gpucommons.store.calls import create_program
from gpucommons.store.jobs import JobRow
from gpucommons.store.usage import UsageRow
from tests.service.conftest import World

# (project, site, model, day in 2026-MM-DD, gpu_hours, kWh, won): alpha is KAIST's (a university,
# outside the capital), beta Seoul AI's (a startup, in the capital). Times are the segments' ends.
HISTORY = [
    ("alpha", "daejeon", "H100", "2026-03-02", 8.0, 5.0, 16_000),
    ("alpha", None, "A100", "2026-03-31", 2.0, 1.0, 4_000),  # metered before sites were recorded
    ("beta", "seoul", "H100", "2026-03-15", 4.0, 3.0, 8_000),
    ("beta", "seoul", "H100", "2026-04-01", 16.0, 10.0, 32_000),  # April: outside March
]


def record(world: World) -> None:
    """The history, as usage rows of one job per segment (the first two of one alpha job)."""
    with world.app.state.sessions() as s:
        program = create_program(s, name="call-2026", model="H100", capacity_gpus=16, duration_days=90)
        terms = award_repo.AwardTerms(project_id=world.ids["alpha"], program_id=program.id, guaranteed_gpus=8)
        award = award_repo.create_award(s, terms, datetime(2026, 3, 1, tzinfo=UTC))
        jobs: dict[str, JobRow] = {}
        for n, (project, site, model, day, hours, kwh, won) in enumerate(HISTORY):
            key = "alpha" if project == "alpha" else f"beta-{n}"
            if key not in jobs:
                jobs[key] = JobRow(
                    project_id=world.ids[project],
                    user_id=world.ids["admin"],
                    name="j",
                    command=["true"],
                    gpus=2,
                    time_limit_s=3600.0,
                    submitted_at=datetime(2026, 3, 1, tzinfo=UTC),
                    state="finished",
                )
                s.add(jobs[key])
                s.flush()
            end = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)
            s.add(
                UsageRow(
                    job_id=jobs[key].id,
                    project_id=world.ids[project],
                    award_id=award.id if project == "alpha" else None,  # beta runs unawarded
                    started_at=end.replace(hour=8),
                    ended_at=end,
                    gpus=2,
                    model=model,
                    gpu_hours=hours,
                    energy_kwh=kwh,
                    cost_krw=won,
                    co2_kg=kwh * 0.5,
                    flops=hours * 1e18,
                    site=site,
                )
            )
        s.commit()


def lines(world: World, who: str, **query: str) -> dict[str, dict[str, object]]:
    response = world.client(who).get("/reports/usage", params=query)
    assert response.status_code == 200, response.text
    return {line.pop("group"): line for line in response.json()["lines"]}


def test_march_by_kind_region_site_and_model(world: World) -> None:
    record(world)
    by_kind = lines(world, "admin", by="kind", period="2026-03")
    no_waits = {"waited_jobs": 0, "avg_wait_h": None, "p90_wait_h": None}  # no job has ended yet
    assert by_kind == {  # every segment is held 4 h (08:00-12:00) on 2 GPUs
        "university": {"bucket": "", "gpu_hours": 10.0, "segments": 2, "jobs": 1, "energy_kwh": 6.0,
                       "co2_kg": 3.0, "cost_krw": 20_000, "flops": 10e18, "wall_hours": 8.0,
                       "mean_gpus": 1.25, "max_gpus": 2, **no_waits},
        "startup": {"bucket": "", "gpu_hours": 4.0, "segments": 1, "jobs": 1, "energy_kwh": 3.0,
                    "co2_kg": 1.5, "cost_krw": 8_000, "flops": 4e18, "wall_hours": 4.0, "mean_gpus": 1.0,
                    "max_gpus": 2, **no_waits},
    }  # fmt: skip
    assert list(by_kind) == ["university", "startup"]  # largest GPU-hours first
    assert {g: v["gpu_hours"] for g, v in lines(world, "admin", by="region", period="2026-03").items()} == {
        "non_capital": 10.0,
        "capital": 4.0,
    }
    by_site = lines(world, "reviewer", by="site", period="2026-03")
    assert {g: v["gpu_hours"] for g, v in by_site.items()} == {"daejeon": 8.0, "seoul": 4.0, "(unknown)": 2.0}
    assert {g: v["jobs"] for g, v in lines(world, "admin", by="model", period="2026-Q1").items()} == {
        "H100": 2,
        "A100": 1,
    }
    by_program = lines(world, "admin", by="program", period="2026-03")
    assert {g: v["gpu_hours"] for g, v in by_program.items()} == {"call-2026": 10.0, "(no award)": 4.0}


@pytest.mark.parametrize(
    ("period", "hours"),
    # 2026-W14 runs from Monday 30 March to Sunday 5 April
    [("2026", 30.0), ("2026-04", 16.0), ("2026-04-01", 16.0), ("2026-W14", 18.0), ("2026-03-31", 2.0),
     ("2026-Q2", 16.0), ("2025", 0.0)],
)  # fmt: skip
def test_every_period_selects_the_segments_that_ended_in_it(world: World, period: str, hours: float) -> None:
    record(world)
    got = lines(world, "admin", by="project", period=period)
    assert sum(float(str(v["gpu_hours"])) for v in got.values()) == hours


def test_nobody_sees_another_tenants_figures(world: World) -> None:
    record(world)
    assert set(lines(world, "member", by="project")) == {"alpha"}
    assert set(lines(world, "outsider", by="project")) == {"beta"}
    assert set(lines(world, "pi", by="kind")) == {"university"}
    assert set(lines(world, "admin", by="project")) == {"alpha", "beta"}


@pytest.mark.parametrize(
    ("query", "said"),
    [({"by": "colour"}, "by"), ({"period": "March"}, "period 'March' is not"),
     ({"period": "2026-13"}, "2026-13"), ({"period": "2026-W54"}, "2026-W54"),
     ({"period": "2026-02-30"}, "2026-02-30"), ({"period": "x" * 300}, "")],
)  # fmt: skip
def test_a_bad_grouping_or_period_is_a_one_line_422(world: World, query: dict[str, str], said: str) -> None:
    response = world.client("admin").get("/reports/usage", params=query)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and said in detail


def test_the_compute_ledger_warns_as_a_project_nears_the_threshold(world: World) -> None:
    record(world)  # alpha 10e18 + beta 20e18 FLOPs so far: far below 10^26
    with world.app.state.sessions() as s:  # one large pre-training run of beta's
        row = s.scalars(select(UsageRow).where(UsageRow.project_id == world.ids["beta"])).first()
        assert row is not None
        row.flops = 8.5e25
        s.commit()
    ledger = world.client("admin").get("/reports/compute").json()
    assert (ledger["threshold_flops"], ledger["utilization_assumed"]) == (1e26, 0.4)
    got = {line["project"]: (line["status"], line["share_of_threshold"]) for line in ledger["lines"]}
    assert got["beta"][0] == "above 80 %" and got["beta"][1] == pytest.approx((8.5e25 + 16e18) / 1e26)
    assert got["alpha"] == ("below 50 %", pytest.approx(10e18 / 1e26))
    mine = world.client("member").get("/reports/compute").json()["lines"]
    assert [line["project"] for line in mine] == ["alpha"]  # another tenant's compute is not shown


def test_a_time_series_splits_each_group_by_month(world: World) -> None:
    record(world)
    response = world.client("admin").get(
        "/reports/usage", params={"by": "project", "period": "2026", "every": "month"}
    )
    assert response.status_code == 200, response.text
    got = [
        (line["bucket"], line["group"], line["gpu_hours"], line["jobs"]) for line in response.json()["lines"]
    ]
    assert got == [("2026-03", "alpha", 10.0, 1), ("2026-03", "beta", 4.0, 1), ("2026-04", "beta", 16.0, 1)]
    weekly = (
        world.client("admin").get("/reports/usage", params={"by": "kind", "every": "week"}).json()["lines"]
    )
    assert {(x["bucket"], x["group"]): x["gpu_hours"] for x in weekly} == {
        ("2026-W10", "university"): 8.0,
        ("2026-W11", "startup"): 4.0,
        ("2026-W14", "university"): 2.0,
        ("2026-W14", "startup"): 16.0,
    }
    for every, want in (
        ("quarter", {("2026-Q1", "alpha"): 10.0, ("2026-Q1", "beta"): 4.0, ("2026-Q2", "beta"): 16.0}),
        ("year", {("2026", "alpha"): 10.0, ("2026", "beta"): 20.0}),
        ("day", {("2026-03-02", "alpha"): 8.0, ("2026-03-31", "alpha"): 2.0, ("2026-03-15", "beta"): 4.0,
                 ("2026-04-01", "beta"): 16.0}),
    ):  # fmt: skip
        series = world.client("admin").get("/reports/usage", params={"by": "project", "every": every}).json()
        assert {(x["bucket"], x["group"]): x["gpu_hours"] for x in series["lines"]} == want, every
    assert world.client("admin").get("/reports/usage", params={"every": "fortnight"}).status_code == 422


def test_waits_and_job_size_of_the_jobs_that_ended(world: World) -> None:
    record(world)
    with world.app.state.sessions() as s:  # each job ends with its last segment (12:00 that day)
        for job in s.scalars(select(JobRow)):
            segments = list(s.scalars(select(UsageRow).where(UsageRow.job_id == job.id)))
            job.ended_at = max(u.ended_at for u in segments)
            job.attained_gpu_s = sum(u.gpus * (u.ended_at - u.started_at).total_seconds() for u in segments)
        s.commit()
    # in the system from 1 March 00:00 to the end, less 4 h per segment run
    by_kind = lines(world, "admin", by="kind", period="2026-03")
    assert {k: (v["waited_jobs"], v["avg_wait_h"], v["p90_wait_h"]) for k, v in by_kind.items()} == {
        "university": (1, pytest.approx(30.5 * 24 - 8), pytest.approx(30.5 * 24 - 8)),
        "startup": (1, pytest.approx(14.5 * 24 - 4), pytest.approx(14.5 * 24 - 4)),
    }
    beta = lines(world, "admin", by="project", period="2026")["beta"]
    waits = (14.5 * 24 - 4, 31.5 * 24 - 4)
    assert (beta["waited_jobs"], beta["avg_wait_h"]) == (2, pytest.approx(sum(waits) / 2))
    assert beta["p90_wait_h"] == pytest.approx(waits[0] + 0.9 * (waits[1] - waits[0]))
    assert (beta["wall_hours"], beta["mean_gpus"], beta["max_gpus"]) == (8.0, 2.5, 2)  # 20 GPU-h over 8 h
    by_site = lines(world, "admin", by="site", period="2026")  # a job has no one site: no waits
    assert {v["waited_jobs"] for v in by_site.values()} == {None}
    series = lines(world, "admin", by="kind", period="2026", every="month")
    assert {v["avg_wait_h"] for v in series.values()} == {None}
    assert {v["wall_hours"] for v in series.values()} == {8.0, 4.0}
