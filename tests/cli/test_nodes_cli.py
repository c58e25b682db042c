"""``gpuc node list|drain|resume`` against an in-process server, and their one-line refusals."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gpucommons.cli import app, nodes
from tests.service.conftest import World

runner = CliRunner()


def _as(monkeypatch: pytest.MonkeyPatch, world: World, who: str) -> None:
    world.cli_as(monkeypatch, who, nodes)


def _run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app.app, list(args))
    return result.exit_code, result.output


def test_an_admin_drains_and_resumes_a_node(monkeypatch: pytest.MonkeyPatch, world: World) -> None:
    _as(monkeypatch, world, "admin")
    code, out = _run("node", "drain", "a100-1", "--reason", "firmware update")
    assert (
        code == 0
        and out.startswith("node a100-1 drained since ")
        and out.rstrip().endswith("firmware update")
    )
    code, out = _run("node", "list", "--json")
    listed = {n["name"]: n for n in json.loads(out)}
    assert (listed["a100-1"]["drained"], listed["a100-1"]["drained_by"]) == (True, "admin")
    assert not listed["h100-1"]["drained"]
    code, out = _run("node", "list")
    assert code == 0 and "firmware" in out  # a narrow terminal wraps the reason
    code, out = _run("node", "resume", "a100-1")
    assert (code, out.strip()) == (0, "node a100-1 in service (4 of 4 GPUs free)")


@pytest.mark.parametrize(
    ("who", "args", "said"),
    [
        ("member", ("node", "drain", "a100-1", "--reason", "mine"), "admin"),
        ("admin", ("node", "drain", "z-9", "--reason", "gone"), "node 'z-9' not found"),
        ("admin", ("node", "drain", "a100-1"), "--reason"),
        ("admin", ("node", "resume", "z-9"), "node 'z-9' not found"),
    ],
)
def test_refusals_are_one_line_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, world: World, capsys: pytest.CaptureFixture[str], who: str,
    args: tuple[str, ...], said: str,
) -> None:  # fmt: skip
    _as(monkeypatch, world, who)
    monkeypatch.setattr("sys.argv", ["gpuc", *args])
    with pytest.raises(SystemExit) as stopped:
        app.main()
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and said in err and err.count("\n") == 1, err
