"""``gpuc program create`` states a program's lifecycle reclaim rule at once (a rule that does not
hold is one ``error:`` line and stores no program), and ``gpuc award reclaims`` lists what the rule
took back."""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from gpucommons.cli import app, awards, programs
from tests.service.conftest import World

runner = CliRunner()
CREATE = ("program", "create", "call", "--model", "H100", "--capacity-gpus", "16")


@pytest.fixture
def as_admin(monkeypatch: pytest.MonkeyPatch, world: World) -> World:
    world.cli_as(monkeypatch, "admin", programs, awards)
    return world


def test_a_program_is_created_with_its_reclaim_rule(as_admin: World) -> None:
    rule = ("--reclaim-table", "[[0.2, 0.8], [0.55, 0.35]]", "--reclaim-period-days", "14")
    created = runner.invoke(app.app, [*CREATE, *rule, "--reclaim-warning-days", "3", "--json"])
    assert created.exit_code == 0, created.output
    program = json.loads(created.output)
    assert (program["reclaim_table"], program["reclaim_period_days"], program["reclaim_warning_days"]) == (
        [[0.2, 0.8], [0.55, 0.35]],
        14,
        3,
    )
    rule_read = as_admin.client("reviewer").get(f"/programs/{program['id']}/reclaim-rule").json()
    assert (rule_read["default_table"], rule_read["period_days"]) == (False, 14)
    shown = runner.invoke(app.app, ["program", "show", str(program["id"])])
    assert shown.exit_code == 0 and "reclaim_period_days" in shown.output


def test_without_a_rule_the_program_takes_the_default(as_admin: World) -> None:
    created = runner.invoke(app.app, [*CREATE, "--json"])
    program = json.loads(created.output)
    assert (program["reclaim_table"], program["reclaim_period_days"], program["reclaim_warning_days"]) == (
        None,
        30,
        7,
    )


@pytest.mark.parametrize(
    ("rule", "said"),
    [
        (("--reclaim-table", "[[0.5, 0.2], [0.3, 0.4]]"), "not monotone"),
        (("--reclaim-table", "not json"), "--reclaim-table: not JSON"),
        (("--reclaim-period-days", "10", "--reclaim-warning-days", "10"), "warning"),
    ],
)
def test_a_bad_rule_is_one_line_and_stores_nothing(
    as_admin: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    rule: tuple[str, ...],
    said: str,
) -> None:
    monkeypatch.setattr(sys, "argv", ["gpuc", *CREATE, *rule])
    with pytest.raises(SystemExit) as stopped:
        app.main()
    err = capsys.readouterr().err.strip()
    assert stopped.value.code == 2 and err.startswith("error:") and "\n" not in err and said in err, err
    assert as_admin.client("admin").get("/programs").json() == []


def test_the_reclaims_of_an_award_are_listed(as_admin: World) -> None:
    rule = ("--reclaim-table", "[[0.2, 0.5]]", "--reclaim-period-days", "10", "--reclaim-warning-days", "2")
    program = json.loads(runner.invoke(app.app, [*CREATE, *rule, "--json"]).output)
    admin = as_admin.client("admin")
    body = {"project_id": as_admin.ids["alpha"], "program_id": program["id"], "guaranteed_gpus": 16}
    award_id = admin.post("/awards", json={**body, "gpu_hours_budget": 1000}).json()["id"]
    assert admin.post(f"/awards/{award_id}/activate").status_code == 200
    assert runner.invoke(app.app, ["award", "reclaims", str(award_id), "--json"]).output.strip() == "[]"
    at = (as_admin.clock.now + timedelta(days=11)).isoformat()
    assert admin.post("/lifecycle/run", json={"now": at}).status_code == 200
    listed = json.loads(runner.invoke(app.app, ["award", "reclaims", str(award_id), "--json"]).output)
    assert [(r["reclaimed_gpus"], r["reclaimed_gpu_hours"], r["period"]) for r in listed] == [(8, 500.0, 1)]
    table = runner.invoke(app.app, ["award", "reclaims", str(award_id)])
    assert table.exit_code == 0 and "500.0" in table.output
