"""The scenario file: one run's inputs, validated; paths taken from the file's folder; the command line
over the file over the defaults."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gpucommons.clusterfile import load_cluster
from gpucommons.domain.power import PowerModel
from gpucommons.errors import ConfigError, InvalidRequestError
from gpucommons.sim.scenariofile import (
    DEFAULTS,
    RunInputs,
    Scenario,
    check_power_cap_mw,
    load_scenario,
    parse_on_off,
    parse_scenario,
    scenario_preset_names,
    with_power_cap,
)

FULL = """
cluster = "clusters/mine.toml"
tenants = "tenants.csv"
trace = "traces/jobs.csv"
load = 2.5
policy = "quota"
placement = "spread"
borrowing = false
power_cap_mw = 1.5
power_preempt = true
unlisted = "best-effort"
[power_model]
device_utilization = 0.6
node_base_fraction = 0.25
"""


def test_full_scenario_resolves_paths_from_its_folder(tmp_path: Path) -> None:
    scenario = parse_scenario(FULL, tmp_path / "runs" / "s.toml")
    runs = tmp_path / "runs"
    assert scenario == Scenario(
        cluster=str(runs / "clusters" / "mine.toml"),
        tenants=runs / "tenants.csv",
        trace=str(runs / "traces" / "jobs.csv"),
        load=2.5,
        policy="quota",
        placement="spread",
        borrowing=False,
        power_cap_mw=1.5,
        power_preempt=True,
        unlisted="best-effort",
        power_model=PowerModel(0.6, 0.25),
    )


def test_names_stay_names(tmp_path: Path) -> None:
    scenario = parse_scenario('cluster = "korea-2026"\ntrace = "synthetic"\n', tmp_path / "s.toml")
    assert (scenario.cluster, scenario.trace, scenario.tenants) == ("korea-2026", "synthetic", None)


def test_absolute_paths_stay_absolute(tmp_path: Path) -> None:
    scenario = parse_scenario('tenants = "/data/t.csv"\ncluster = "/data/c.toml"\n', tmp_path / "s.toml")
    assert scenario.tenants == Path("/data/t.csv") and scenario.cluster == "/data/c.toml"


def test_empty_scenario_runs_the_defaults(tmp_path: Path) -> None:
    assert parse_scenario("", tmp_path / "s.toml") == Scenario()
    assert Scenario().resolve() == RunInputs(
        cluster="philly",
        tenants=None,
        trace="philly",
        load=1.0,
        policy="fifo",
        placement="best-fit",
        borrowing=True,
        power_cap_mw=None,
        power_preempt=False,
        siting=False,
        unlisted="error",
        power_model=PowerModel(),
        checkpoint_aware=False,
        checkpoints=None,
        reservations=(),
    )


def test_command_line_over_file_over_defaults(tmp_path: Path) -> None:
    from_file = parse_scenario(FULL, tmp_path / "s.toml")
    given = Scenario(policy="fifo", borrowing=True, power_preempt=False)
    run = given.over(from_file).resolve()
    assert (run.policy, run.borrowing, run.power_preempt) == ("fifo", True, False)  # the command line
    assert (run.placement, run.load, run.unlisted) == ("spread", 2.5, "best-effort")  # the file
    partial = parse_scenario('policy = "las"\n', tmp_path / "s.toml")
    assert Scenario().over(partial).resolve().placement == DEFAULTS.placement  # the defaults


def test_power_model_table_may_set_one_key(tmp_path: Path) -> None:
    scenario = parse_scenario("[power_model]\ndevice_utilization = 0.7\n", tmp_path / "s.toml")
    assert scenario.power_model == PowerModel(0.7, PowerModel().node_base_fraction)


@pytest.mark.parametrize(
    ("name", "text", "want"),
    [
        ("unknown key", 'colour = "blue"\n', "colour: Extra inputs are not permitted"),
        ("unknown power-model key", "[power_model]\nidle_w = 3\n", "power_model.idle_w"),
        ("load zero", "load = 0\n", "load"),
        ("load infinite", "load = inf\n", "load"),
        ("cap zero", "power_cap_mw = 0\n", "power_cap_mw"),
        ("cap negative", "power_cap_mw = -1.0\n", "power_cap_mw"),
        ("cap nan", "power_cap_mw = nan\n", "power_cap_mw"),
        ("borrowing a word", 'borrowing = "off"\n', "borrowing"),
        ("unlisted unknown", 'unlisted = "ignore"\n', "unlisted"),
        ("utilization above 1", "[power_model]\ndevice_utilization = 1.5\n", "device_utilization"),
        ("negative base fraction", "[power_model]\nnode_base_fraction = -0.1\n", "node_base_fraction"),
        ("empty policy", 'policy = ""\n', "policy"),
        ("not TOML", "load = [\n", "not valid TOML"),
    ],
)
def test_bad_scenario_is_one_line_naming_file_and_field(
    name: str, text: str, want: str, tmp_path: Path
) -> None:
    path = tmp_path / "s.toml"
    with pytest.raises(ConfigError) as err:
        parse_scenario(text, path)
    message = str(err.value)
    assert message.startswith(f"{path}: "), name
    assert want in message and "\n" not in message, message


def test_missing_scenario_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read scenario file .*absent\.toml"):
        load_scenario(str(tmp_path / "absent.toml"))


def test_scenario_file_from_disk(tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text('tenants = "t.csv"\npolicy = "las"\n')
    scenario = load_scenario(str(tmp_path / "s.toml"))
    assert scenario.tenants == tmp_path / "t.csv" and scenario.policy == "las"


def test_shipped_philly_commons_scenario() -> None:
    assert "philly-commons" in scenario_preset_names()
    scenario = load_scenario("philly-commons")
    assert scenario.cluster == "philly" and scenario.trace == "philly"
    assert scenario.tenants is not None and scenario.tenants.name == "philly-tenants.csv"
    assert scenario.tenants.is_file()
    assert scenario.power_cap_mw is not None and scenario.power_cap_mw > 0
    assert scenario.unlisted == "error" and scenario.borrowing is True


def test_on_off_and_power_cap_options() -> None:
    assert parse_on_off(None, "--borrowing") is None
    assert parse_on_off("on", "--borrowing") is True and parse_on_off("off", "--borrowing") is False
    with pytest.raises(InvalidRequestError, match="--borrowing must be on or off, got 'yes'"):
        parse_on_off("yes", "--borrowing")
    assert check_power_cap_mw(None) is None and check_power_cap_mw(2.0) == 2.0
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(InvalidRequestError, match="--power-cap-mw must be a finite number > 0"):
            check_power_cap_mw(bad)


def test_with_power_cap_replaces_every_sites_base_cap_and_keeps_windows() -> None:
    korea = load_cluster("korea-2026")
    capped = with_power_cap(korea, 5.0)
    assert [s.power_cap_mw for s in capped.sites] == [5.0, 5.0, 5.0]
    assert [s.cap_windows for s in capped.sites] == [s.cap_windows for s in korea.sites]
    assert capped.pools == korea.pools and capped.total_gpus == korea.total_gpus
    assert [n.name for n in capped.nodes] == [n.name for n in korea.nodes]


def test_siting_layers_like_every_other_field(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("siting = true\n")
    from_file = parse_scenario(path.read_text(), path)
    assert from_file.resolve().siting is True
    assert Scenario(siting=False).over(from_file).resolve().siting is False
