"""``gpuc admin lifecycle run|rule``, ``gpuc notice list`` and ``gpuc admin user set-email`` against an
in-process server; bad input (a ``--now`` or ``--table`` that does not parse, a table that is not
monotone) is one ``error:`` line, exit code 2, and changes nothing."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from gpucommons.cli import admin, app, lifecycle, notices
from tests.service.conftest import World

runner = CliRunner()


def _as(monkeypatch: pytest.MonkeyPatch, world: World, who: str) -> None:
    world.cli_as(monkeypatch, who, admin, lifecycle, notices)


def _ok(*args: str) -> str:
    result = runner.invoke(app.app, list(args))
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def _fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    monkeypatch.setattr(sys, "argv", ["gpuc", *args])
    with pytest.raises(SystemExit) as exit_info:
        app.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    return err


def _seed_award(world: World) -> int:
    admin_http = world.client("admin")
    program = admin_http.post("/programs", json={"name": "call", "model": "H100", "capacity_gpus": 16})
    award = admin_http.post(
        "/awards",
        json={"project_id": world.ids["alpha"], "program_id": program.json()["id"], "guaranteed_gpus": 8},
    )
    assert award.status_code == 201, award.text
    award_id: int = award.json()["id"]
    return award_id


def test_run_a_step_at_a_date_and_list_the_notices(monkeypatch: pytest.MonkeyPatch, world: World) -> None:
    award_id = _seed_award(world)
    _as(monkeypatch, world, "admin")
    _ok("admin", "user", "set-email", str(world.ids["pi"]), "pi@alpha.example")
    out = _ok("admin", "lifecycle", "run", "--now", world.clock.now.isoformat())
    assert "0 expired, 0 reclaimed, 0 offered, 1 notices queued" in out
    report = json.loads(_ok("admin", "lifecycle", "run", "--now", "2026-09-01", "--json"))
    assert report["expired"] == [award_id] and report["now"].startswith("2026-09-01")
    listed = json.loads(_ok("notice", "list", "--json"))
    assert [(n["kind"], n["recipients"]) for n in listed] == [
        ("award_expired", "pi@alpha.example"),
        ("award_offered", "pi@alpha.example"),
    ]
    assert len(json.loads(_ok("notice", "list", "--unsent", "--limit", "1", "--json"))) == 1
    assert "award_expired" in _ok("notice", "list")
    _as(monkeypatch, world, "member")
    assert json.loads(_ok("notice", "list", "--json")) == []  # not a PI of alpha


def test_a_rule_is_shown_and_changed_part_by_part(monkeypatch: pytest.MonkeyPatch, world: World) -> None:
    _seed_award(world)
    _as(monkeypatch, world, "admin")
    shown = json.loads(_ok("admin", "lifecycle", "rule", "1", "--json"))
    assert (shown["default_table"], shown["period_days"], shown["warning_days"]) == (True, 30, 7)
    changed = json.loads(_ok("admin", "lifecycle", "rule", "1", "--table", "[[0.5, 0.25]]", "--json"))
    assert (changed["table"], changed["period_days"]) == ([[0.5, 0.25]], 30)
    kept = json.loads(_ok("admin", "lifecycle", "rule", "1", "--warning-days", "3", "--json"))
    assert (kept["table"], kept["warning_days"]) == ([[0.5, 0.25]], 3)
    back = json.loads(_ok("admin", "lifecycle", "rule", "1", "--default-table", "--json"))
    assert (back["default_table"], back["warning_days"]) == (True, 3)


def test_bad_input_is_one_line_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed_award(world)
    _as(monkeypatch, world, "admin")
    assert "not an ISO 8601" in _fails(monkeypatch, capsys, "admin", "lifecycle", "run", "--now", "tomorrow")
    assert "not JSON" in _fails(monkeypatch, capsys, "admin", "lifecycle", "rule", "1", "--table", "[[0.2,")
    err = _fails(
        monkeypatch, capsys, "admin", "lifecycle", "rule", "1", "--table", "[[0.4, 0.2], [0.2, 0.5]]"
    )
    assert "not monotone" in err
    err = _fails(monkeypatch, capsys, "admin", "lifecycle", "rule", "1", "--table", "[[0.2, 1.5]]")
    assert "must be at most 1" in err
    assert json.loads(_ok("admin", "lifecycle", "rule", "1", "--json"))["default_table"] is True
    assert json.loads(_ok("notice", "list", "--json")) == []
    _as(monkeypatch, world, "pi")
    assert "not an admin" in _fails(monkeypatch, capsys, "admin", "lifecycle", "run")
