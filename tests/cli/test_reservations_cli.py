"""``gpuc reserve create|list|show|cancel`` against an in-process server (the ``demo`` cluster: 2 x 8
H100, 2 x 4 A100): what each prints, and bad input as one ``error:`` line, exit code 2, nothing
stored."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from gpucommons.cli import app, reservations
from gpucommons.cli.reservations import parse_span, span_text
from gpucommons.client import GpucClient
from gpucommons.errors import InvalidRequestError
from gpucommons.store.base import count_rows
from gpucommons.store.reservations import ReservationRow
from tests.service.conftest import World

runner = CliRunner()


def _ok(*args: str) -> str:
    result = runner.invoke(app.app, list(args), env={"COLUMNS": "160"})
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.output


def _fails(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    monkeypatch.setattr(sys, "argv", ["gpuc", *args])
    with pytest.raises(SystemExit) as stopped:
        app.main()
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and err.startswith("error:") and "\n" not in err, err
    return err


@pytest.fixture
def as_admin(monkeypatch: pytest.MonkeyPatch, world: World) -> World:
    def make() -> GpucClient:
        return GpucClient("http://testserver", world.tokens["admin"], http=world.client(None))

    monkeypatch.setattr(reservations, "make_client", make)
    return world


def test_create_list_show_and_cancel(as_admin: World) -> None:
    start = (as_admin.clock.now + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    at = start.strftime("%Y-%m-%dT%H:%M")
    create = ("reserve", "create", "--project", "alpha", "--gpus", "16", "--model", "h100", "--start", at)
    said = _ok(*create, "--duration", "6h", "--every", "1d", "--occurrences", "3", "--within", "block")
    end = start + timedelta(hours=6)
    assert said.splitlines() == [
        "reserved: reservation 1: 16 H100 GPUs for project alpha, in one network block",
        f"from {start:%Y-%m-%d %H:%M} UTC for 6h, every 1d x3",
        f"state: scheduled; next: {start:%Y-%m-%d %H:%M} UTC to {end:%Y-%m-%d %H:%M} UTC",
    ]
    later = (start + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M")
    a100 = ("reserve", "create", "--project", "alpha", "--gpus", "8", "--model", "A100", "--start", later)
    made = json.loads(_ok(*a100, "--duration", "1d12h", "--lend-idle", "--json"))
    assert (made["gpus"], made["model"], made["lend_idle"]) == (8, "A100", True)
    listed = _ok("reserve", "list")
    assert "every 1d x3" in listed and "once" in listed and "idle GPUs lent" in listed
    assert [r["id"] for r in json.loads(_ok("reserve", "list", "--project", "alpha", "--json"))] == [1, 2]
    assert "state: scheduled" in _ok("reserve", "show", "2")
    assert _ok("reserve", "cancel", "2").splitlines()[0] == (
        "cancelled: reservation 2: 8 A100 GPUs for project alpha, idle GPUs lent"
    )
    assert "state: cancelled at" in _ok("reserve", "show", "2")
    assert [r["id"] for r in json.loads(_ok("reserve", "list", "--json"))] == [1]
    assert [r["id"] for r in json.loads(_ok("reserve", "list", "--all", "--json"))] == [1, 2]


def test_bad_input_is_one_line_and_stores_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], as_admin: World
) -> None:
    start = (as_admin.clock.now + timedelta(days=1)).isoformat()
    base = ["reserve", "create", "--project", "alpha", "--model", "H100", "--start", start]
    for args, said in [
        ([*base, "--gpus", "12", "--duration", "1h"], "12 GPUs is not a multiple of H100's 8 GPUs a node"),
        (
            [*base, "--gpus", "32", "--duration", "1h"],
            "32 GPUs of H100 is more than its pool: 16 GPUs in all",
        ),
        ([*base, "--gpus", "8", "--duration", "soon"], "--duration: 'soon' is not a duration"),
        ([*base, "--gpus", "8", "--duration", "1h", "--every", "0s"], "--every: '0s' must be more than 0 s"),
        ([*base, "--gpus", "8", "--duration", "1h", "--within", "rack"], "--within: 'rack' is neither"),
        (
            [*base[:-1], "yesterday", "--gpus", "8", "--duration", "1h"],
            "--start: 'yesterday' is not an ISO 8601",
        ),
        ([*base[:-1], "2020-01-01T00:00", "--gpus", "8", "--duration", "1h"], "is in the past"),
        (["reserve", "show", "99"], "reservation 99 not found"),
        (["reserve", "cancel", "99"], "reservation 99 not found"),
        (["reserve", "create", "--project", "alpha"], "Missing option"),
    ]:
        assert said in _fails(monkeypatch, capsys, *args)
    with as_admin.app.state.sessions() as s:
        assert count_rows(s, ReservationRow) == 0


@pytest.mark.parametrize(
    ("text", "seconds", "shown"),
    [("90s", 90, "1m30s"), ("24h", 86_400, "1d"), ("7d", 604_800, "7d"), ("1h30m", 5_400, "1h30m"),
     ("3600", 3_600, "1h"), (" 2D ", 172_800, "2d")],
)  # fmt: skip
def test_durations_read_and_shown(text: str, seconds: int, shown: str) -> None:
    assert parse_span(text, "--duration") == seconds and span_text(seconds) == shown


@pytest.mark.parametrize("text", ["", "1.5h", "h", "-1h", "1w", "0"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(InvalidRequestError, match="--every"):
        parse_span(text, "--every")
