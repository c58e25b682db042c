"""The training-compute ledger per project and per model lineage, each project's transparency report,
and the ``compute_threshold`` notices, over a known history on both databases."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from gpucommons.cli import app, reports
from gpucommons.domain.accelerators import CATALOG
from gpucommons.store.compute import queue_compute_notices
from gpucommons.store.jobs import JobRow
from gpucommons.store.notices import NoticeRow
from gpucommons.store.usage import UsageRow
from tests.service.conftest import World

# (project, job, lineage, model, day the segment ended, GPU-hours, FLOPs)
HISTORY = [
    ("alpha", 1, "hanbit-7b", "H100", "2026-03-02", 10.0, 3.0e25),
    ("alpha", 2, "", "A100", "2026-03-20", 2.0, 1.0e24),
    ("alpha", 1, "hanbit-7b", "H100", "2026-04-05", 5.0, 2.5e25),
    ("alpha", 3, "hanbit-7b", "A100", "2026-04-10", 1.0, 1.0e25),
    ("beta", 4, "hanbit-7b", "H100", "2026-04-11", 1.0, 1.0e20),  # another project's lineage of that name
]


def add_history(world: World, history: list[tuple[str, int, str, str, str, float, float]]) -> None:
    with world.app.state.sessions() as s:
        jobs: dict[int, JobRow] = {}
        for project, job, lineage, model, day, hours, flops in history:
            if job not in jobs:
                jobs[job] = s.scalar(select(JobRow).where(JobRow.name == f"job-{job}")) or JobRow(
                    project_id=world.ids[project],
                    user_id=world.ids["admin"],
                    name=f"job-{job}",
                    command=["true"],
                    gpus=1,
                    time_limit_s=3600.0,
                    submitted_at=datetime(2026, 3, 1, tzinfo=UTC),
                    state="finished",
                    lineage=lineage,
                )
                s.add(jobs[job])
                s.flush()
            end = datetime.fromisoformat(day).replace(hour=12, tzinfo=UTC)
            s.add(
                UsageRow(
                    job_id=jobs[job].id,
                    project_id=world.ids[project],
                    started_at=end.replace(hour=1),
                    ended_at=end,
                    gpus=1,
                    model=model,
                    gpu_hours=hours,
                    energy_kwh=0.0,
                    cost_krw=0,
                    co2_kg=0.0,
                    flops=flops,
                )
            )
        s.commit()


def test_a_submission_names_its_lineage(world: World) -> None:
    job = world.client("member").post(
        "/jobs", json={"project": "alpha", "command": ["true"], "lineage": "hanbit-7b"}
    )
    assert job.status_code == 201, job.text
    assert world.client("member").get(f"/jobs/{job.json()['id']}").json()["lineage"] == "hanbit-7b"
    nul = world.client("member").post(
        "/jobs", json={"project": "alpha", "command": ["true"], "lineage": "a\x00"}
    )
    assert nul.status_code == 422


def test_the_ledger_by_project_and_by_lineage(world: World) -> None:
    add_history(world, HISTORY)
    admin = world.client("admin")
    projects = admin.get("/reports/compute").json()
    got = {x["project"]: (x["flops"], x["gpu_hours"], x["status"]) for x in projects["lines"]}
    assert got == {
        "alpha": (pytest.approx(6.6e25), 18.0, "above 50 %"),
        "beta": (pytest.approx(1e20), 1.0, "below 50 %"),
    }
    lineages = admin.get("/reports/compute", params={"by": "lineage"}).json()
    assert lineages["by"] == "lineage"
    assert [(x["project"], x["lineage"], x["flops"], x["gpu_hours"]) for x in lineages["lines"]] == [
        ("alpha", "hanbit-7b", pytest.approx(6.5e25), 16.0),
        ("alpha", "", pytest.approx(1e24), 2.0),
        ("beta", "hanbit-7b", pytest.approx(1e20), 1.0),
    ]
    mine = world.client("member").get("/reports/compute", params={"by": "lineage"}).json()["lines"]
    assert {x["project"] for x in mine} == {"alpha"}
    bad = admin.get("/reports/compute", params={"by": "colour"})
    assert bad.status_code == 422


def test_a_projects_transparency_report(world: World) -> None:
    add_history(world, HISTORY)
    report = world.client("pi").get("/reports/compute/alpha").json()
    assert (report["project"], report["threshold_flops"], report["utilization_assumed"]) == (
        "alpha",
        1e26,
        0.4,
    )
    assert (report["total"]["flops"], report["total"]["status"]) == (pytest.approx(6.6e25), "above 50 %")
    assert [(x["lineage"], x["gpu_hours"]) for x in report["lineages"]] == [("hanbit-7b", 16.0), ("", 2.0)]
    assert [(m["model"], m["gpu_hours"], m["flops"], m["bf16_tflops"]) for m in report["models"]] == [
        ("A100", 3.0, pytest.approx(1.1e25), CATALOG["A100"].bf16_tflops),
        ("H100", 15.0, pytest.approx(5.5e25), CATALOG["H100"].bf16_tflops),
    ]
    assert [(m["month"], m["gpu_hours"], m["flops"], m["cumulative_flops"]) for m in report["months"]] == [
        ("2026-03", 12.0, pytest.approx(3.1e25), pytest.approx(3.1e25)),
        ("2026-04", 6.0, pytest.approx(3.5e25), pytest.approx(6.6e25)),
    ]
    assert "40%" in report["method"]
    by_id = world.client("admin").get(f"/reports/compute/{world.ids['alpha']}").json()
    assert by_id["total"] == report["total"]


def test_nobody_reads_another_projects_report(world: World) -> None:
    add_history(world, HISTORY)
    for who, project in (("outsider", "alpha"), ("member", "beta"), ("member", "nope")):
        response = world.client(who).get(f"/reports/compute/{project}")
        assert response.status_code == 404, (who, project)
        assert response.json()["detail"] == f"project {project!r} does not exist"
    assert world.client("reviewer").get("/reports/compute/beta").status_code == 200


def test_each_warning_level_is_noticed_once(world: World) -> None:
    add_history(world, HISTORY)
    now = datetime(2026, 4, 12, tzinfo=UTC)

    def queued() -> list[tuple[str, str]]:
        with world.app.state.sessions() as s:
            queue_compute_notices(s, now)
            s.commit()
            rows = s.scalars(
                select(NoticeRow).where(NoticeRow.kind == "compute_threshold").order_by(NoticeRow.id)
            )
            return [(row.key, row.subject) for row in rows]

    alpha = world.ids["alpha"]
    first = queued()
    assert [key for key, _ in first] == [
        f"compute_threshold:project-{alpha}:50%",
        f"compute_threshold:project-{alpha}:lineage-hanbit-7b:50%",
    ]
    assert "lineage 'hanbit-7b' of project alpha: training compute above 50 %" in first[1][1]
    assert queued() == first  # a second step tells nobody again
    add_history(world, [("alpha", 1, "hanbit-7b", "H100", "2026-04-11", 1.0, 4.0e25)])  # to 1.05e26
    keys = [key for key, _ in queued()][2:]
    assert keys == [  # past 80 % and 100 % at once: told the highest level only
        f"compute_threshold:project-{alpha}:100%",
        f"compute_threshold:project-{alpha}:lineage-hanbit-7b:100%",
    ]


runner = CliRunner()


@pytest.fixture
def as_pi(monkeypatch: pytest.MonkeyPatch, world: World) -> World:
    world.cli_as(monkeypatch, "pi", reports)
    add_history(world, HISTORY)
    return world


def test_the_cli_ledger_by_lineage_and_the_exported_report(as_pi: World, tmp_path: object) -> None:
    table = runner.invoke(app.app, ["report", "compute", "--by", "lineage"])
    assert table.exit_code == 0, table.output
    assert "hanbit-7b" in table.output and "(none)" in table.output and "beta" not in table.output
    md = runner.invoke(app.app, ["report", "transparency", "alpha"])
    assert md.exit_code == 0, md.output
    assert md.output.startswith("# Training compute of project alpha")
    assert "| hanbit-7b | 16.0 | 6.5e+25 | 65.00% | above 50 % |" in md.output
    assert "| 2026-04 | 6.0 | 3.5e+25 | 6.6e+25 |" in md.output
    exported = runner.invoke(app.app, ["report", "transparency", "alpha", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(exported.output)))
    assert [(r["section"], r["name"]) for r in rows] == [
        ("total", "alpha"),
        ("lineage", "hanbit-7b"),
        ("lineage", ""),
        ("model", "A100"),
        ("model", "H100"),
        ("month", "2026-03"),
        ("month", "2026-04"),
    ]
    out = f"{tmp_path}/alpha.json"
    written = runner.invoke(app.app, ["report", "transparency", "alpha", "--format", "json", "--output", out])
    assert written.exit_code == 0, written.output
    with open(out, encoding="utf-8") as f:
        assert json.load(f)["total"]["gpu_hours"] == 18.0


def test_the_cli_refuses_bad_choices_in_one_line(as_pi: World) -> None:
    for args, said in (
        (["report", "compute", "--by", "kind"], "--by must be one of project, lineage"),
        (["report", "transparency", "alpha", "--format", "pdf"], "--format must be one of md, json, csv"),
        (["report", "transparency", "beta"], "project 'beta' does not exist"),
    ):
        result = runner.invoke(app.app, args)
        assert result.exit_code != 0, args
        assert said in str(result.exception) or said in result.output, (args, result.output)
