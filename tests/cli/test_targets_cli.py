"""``gpuc target create|list|delete`` and ``gpuc report targets`` against an in-process server, over
the usage history of the report tests; bad input is one ``error:`` line, exit code 2, nothing stored."""

from __future__ import annotations

import csv
import io
import json
import sys

import pytest
from typer.testing import CliRunner

from gpucommons.cli import app, reports, targets
from tests.service.conftest import World
from tests.service.test_reports import record

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app.app, list(args))
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def _fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    monkeypatch.setattr(sys, "argv", ["gpuc", *args])
    with pytest.raises(SystemExit) as stopped:
        app.main()
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and err.startswith("error:") and "\n" not in err, err
    return err


def test_declare_report_and_delete(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], world: World
) -> None:
    world.cli_as(monkeypatch, "admin", reports, targets)
    record(world)
    made = json.loads(
        _ok(
            "target",
            "create",
            "startups",
            "--by",
            "kind",
            "--group",
            "startup",
            "--min-share",
            "15",
            "--json",
        )
    )
    _ok("target", "create", "academia", "--by", "kind", "--group", "university", "--max-wait-h", "24")
    assert "startups" in _ok("target", "list")
    listed = json.loads(_ok("target", "list", "--json"))
    assert [t["description"] for t in listed] == [
        "kind startup: share of GPU-hours >= 15 % per month",
        "kind university: p90 wait <= 24 h per month",
    ]
    rows = list(
        csv.DictReader(io.StringIO(_ok("report", "targets", "--period", "2026-03", "--format", "csv")))
    )
    assert [(r["name"], r["status"], r["value"], r["jobs"]) for r in rows] == [
        ("startups", "met", str(100 * 4 / 14), ""),
        ("academia", "no data", "", "0"),  # the history's jobs never ended
    ]
    report = json.loads(_ok("report", "targets", "--period", "2026-03", "--format", "json"))
    assert (report["period"], report["lines"][0]["margin"]) == ("2026-03", pytest.approx(100 * 4 / 14 - 15))
    assert "+13.57 %" in _ok("report", "targets", "--period", "2026-03")
    assert "deleted" in _ok("target", "delete", str(made["id"]))
    said = _fails(monkeypatch, capsys, "target", "create", "x", "--by", "kind", "--group", "sme")
    assert "give exactly one of --min-share, --min-gpu-hours or --max-wait-h" in said
    said = _fails(
        monkeypatch, capsys, "target", "create", "x", "--by", "kind", "--group", "sme", "--min-share", "101"
    )
    assert "a share must lie within 0..100 %, got 101 %" in said
    assert "is not YYYY" in _fails(monkeypatch, capsys, "report", "targets", "--period", "March")
    assert "target 999 not found" in _fails(monkeypatch, capsys, "target", "delete", "999")
    assert [t["name"] for t in json.loads(_ok("target", "list", "--json"))] == ["academia"]
