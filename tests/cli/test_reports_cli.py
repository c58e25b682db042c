"""``gpuc report usage`` against an in-process server: the same lines as a table, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpucommons.cli import app, reports
from tests.service.conftest import World
from tests.service.test_reports import record

runner = CliRunner()


@pytest.fixture
def as_admin(monkeypatch: pytest.MonkeyPatch, world: World) -> World:
    world.cli_as(monkeypatch, "admin", reports)
    record(world)
    return world


def _run(*args: str) -> str:
    result = runner.invoke(app.app, ["report", "usage", *args])
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def test_one_report_in_three_formats(as_admin: World) -> None:
    rows = list(csv.DictReader(io.StringIO(_run("--by", "kind", "--period", "2026-03", "--format", "csv"))))
    assert [(r["group"], float(r["gpu_hours"]), int(r["cost_krw"])) for r in rows] == [
        ("university", 10.0, 20_000),
        ("startup", 4.0, 8_000),
    ]
    report = json.loads(_run("--by", "kind", "--period", "2026-03", "--format", "json"))
    assert (report["by"], report["period"], len(report["lines"])) == ("kind", "2026-03", 2)
    table = _run("--by", "kind", "--period", "2026-03")
    assert "university" in table and "20,000" in table


def test_an_unknown_format_is_a_one_line_error(as_admin: World, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr("sys.argv", ["gpuc", "report", "usage", "--format", "xml"])
    with pytest.raises(SystemExit) as stopped:
        app.main()
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert (
        stopped.value.code == 2 and "--format must be one of table, csv, json" in err and err.count("\n") == 1
    )


def test_the_compute_ledger_as_a_table_and_json(as_admin: World) -> None:
    result = runner.invoke(app.app, ["report", "compute", "--json"])
    assert result.exit_code == 0, result.output
    assert {line["project"] for line in json.loads(result.output)["lines"]} == {"alpha", "beta"}
    table = runner.invoke(app.app, ["report", "compute"])
    assert table.exit_code == 0 and "below 50 %" in table.output


def test_a_plot_is_written(as_admin: World, tmp_path: Path) -> None:
    for args in (["--by", "kind"], ["--by", "project", "--every", "month"]):
        png = tmp_path / f"{args[1]}.png"
        _run(*args, "--plot", str(png), "--format", "csv")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
