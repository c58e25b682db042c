"""The allocation commands end to end against an in-process server, the one-line error contract
(``error: ...``, exit code 2), and the credentials file shared with ``gpuc up``."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gpucommons.cli import admin, app, awards, programs, proposals
from gpucommons.cli.credentials import Credentials, load_credentials, resolve_credentials, save_credentials
from tests.service.conftest import World

runner = CliRunner()


def _as(monkeypatch: pytest.MonkeyPatch, world: World, who: str) -> None:
    world.cli_as(monkeypatch, who, admin, awards, programs, proposals)


def _ok(*args: str) -> str:
    result = runner.invoke(app.app, list(args))
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def test_call_to_award_walkthrough(monkeypatch: pytest.MonkeyPatch, world: World) -> None:
    _as(monkeypatch, world, "admin")
    _ok(
        "program",
        "create",
        "call-1",
        "--model",
        "H100",
        "--capacity-gpus",
        "16",
        "--discounts",
        '{"university": 1}',
    )
    assert "call-1" in _ok("program", "list", "--json")
    _as(monkeypatch, world, "pi")
    _ok("proposal", "submit", "--program", "1", "--project", str(world.ids["alpha"]), "--gpus", "16")
    _as(monkeypatch, world, "reviewer")
    _ok("proposal", "review", "1", "--score", "88")
    _as(monkeypatch, world, "admin")
    out = _ok("award", "auto", "1", "--json")
    assert '"guaranteed_gpus": 16' in out
    assert '"active"' in _ok("award", "activate", "1", "--json")
    assert "2027-01-01" in _ok("award", "extend", "1", "--ends-at", "2027-01-01", "--json")
    _as(monkeypatch, world, "member")
    assert "H100" in _ok("award", "list", "--json")


def test_errors_are_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    _as(monkeypatch, world, "member")
    monkeypatch.setattr(
        sys, "argv", ["gpuc", "program", "create", "x", "--model", "H200", "--capacity-gpus", "8"]
    )
    with pytest.raises(SystemExit) as exit_info:
        app.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not an admin" in err and "\n" not in err
    monkeypatch.setattr(sys, "argv", ["gpuc", "award", "extend", "1", "--ends-at", "someday"])
    with pytest.raises(SystemExit):
        app.main()
    assert "not an ISO 8601" in capsys.readouterr().err


def test_credentials_file_round_trip_and_env_override(tmp_path: Path) -> None:
    path = save_credentials(tmp_path, Credentials("http://h:1", "gpuc_x", "alice"))
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_credentials(tmp_path) == Credentials("http://h:1", "gpuc_x", "alice")
    env = {"GPUC_TOKEN": "gpuc_env"}
    assert resolve_credentials(tmp_path, env) == Credentials("http://h:1", "gpuc_env", "alice")
    assert resolve_credentials(tmp_path / "none", {}).token == ""


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["program", "create", "x", "--price-krw-per-gpu-hour", "2000.5"], "Invalid value for '--price-krw"),
        (["nosuch"], "No such command 'nosuch'"),
        (["show"], "Missing argument"),
        (["queue", "--no-such-option"], "No such option"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    monkeypatch.setattr(sys, "argv", ["gpuc", *argv])
    with pytest.raises(SystemExit) as exit_info:
        app.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and said in err and "\n" not in err and "Traceback" not in err


def test_a_command_group_alone_prints_its_help_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["gpuc", "program"])
    with pytest.raises(SystemExit) as exit_info:
        app.main()
    assert exit_info.value.code == 2 and "Usage:" in capsys.readouterr().out
