"""Errors at ``gpuc up``, ``gpuc server`` and ``gpuc scheduler``: on the Slurm backend the cluster
must be named (the demo cluster is never taken silently) and must be what Slurm has. Both are one-line
errors with exit code 2, raised before the state directory is touched. Slurm's answers come from a
scripted client; no Slurm is needed."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from gpucommons.backends.slurm_cli import SlurmCli
from gpucommons.backends.slurm_inventory import check_cluster_on_slurm, cluster_toml, inventory_from_nodes
from gpucommons.backends.slurm_parse import parse_sinfo_nodes
from gpucommons.backends.slurm_submit import SlurmConfig
from gpucommons.cli import app
from gpucommons.clusterfile import parse_cluster
from gpucommons.config import Settings
from gpucommons.domain.cluster import Cluster
from gpucommons.errors import ConfigError
from gpucommons.service import bootstrap
from gpucommons.service.bootstrap import check_backend_cluster

SINFO = """\
h100-1|gpu*|gpu:h100:8|32|256000|h100|idle
h100-1|h100|gpu:h100:8|32|256000|h100|idle
h100-2|gpu*|gpu:h100:8(S:0-1)|32|256000|h100|idle
h100-2|h100|gpu:h100:8(S:0-1)|32|256000|h100|idle
a100-1|gpu*|gpu:a100:4|16|128000|a100|idle
cpu-1|gpu*|(null)|8|16000|(null)|idle
"""
NODES = parse_sinfo_nodes(SINFO)


class FakeSinfo(SlurmCli):
    """Answers ``sinfo`` with ``SINFO``; any other command is a test bug."""

    def run(
        self, args: Sequence[str], *, stdin: str | None = None, env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> str:  # fmt: skip
        assert args[0] == "sinfo", args
        return SINFO


def _cluster(pools: str) -> Cluster:
    return parse_cluster(f'name = "site"\n[[sites]]\nname = "s"\n{pools}', "test cluster")


def _pool(name: str, model: str, nodes: int, gpus: int) -> str:
    fields = f'name = "{name}"\nsite = "s"\nmodel = "{model}"\nnodes = {nodes}\ngpus_per_node = {gpus}'
    return f"[[pools]]\n{fields}\n"


def test_the_imported_cluster_matches_slurm() -> None:
    inventory = inventory_from_nodes(NODES)
    cluster = parse_cluster(cluster_toml(inventory.spec), "imported")
    check_cluster_on_slurm(cluster, NODES, SlurmConfig.from_settings(inventory.backend_settings()))


@pytest.mark.parametrize(
    ("pools", "settings", "words"),
    [
        (
            _pool("b200", "B200", 2, 8),
            {},
            "pool 'b200' of cluster 'site' is not in Slurm: no node 'b200-1' (and 1 more)",
        ),
        (_pool("h100", "H100", 3, 8), {}, "no node 'h100-3'"),
        (_pool("a100", "A100", 1, 8), {}, "Slurm node 'a100-1' has 4 GPUs, the cluster file says 8"),
        (_pool("h100", "H200", 2, 8), {}, "GPUs of type 'h100', not 'h200'"),
        (_pool("h100", "H100", 2, 8), {"partitions": {"h100": "urgent"}}, "not in partition 'urgent'"),
        (_pool("big", "H100", 1, 8), {"node_names": {"big-1": "gpu-9"}}, "no node 'gpu-9'"),
    ],
)
def test_a_cluster_naming_what_slurm_lacks_is_refused(
    pools: str, settings: dict[str, object], words: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        check_cluster_on_slurm(_cluster(pools), NODES, SlurmConfig.from_settings(settings))
    assert words in str(refused.value) and "\n" not in str(refused.value)


def test_renamed_nodes_and_typed_gres_that_match_are_accepted() -> None:
    config = SlurmConfig.from_settings({"node_names": {"fast-1": "h100-1"}, "gres_types": {"H100": "h100"}})
    check_cluster_on_slurm(_cluster(_pool("fast", "H100", 1, 8)), NODES, config)


def _gpuc(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    monkeypatch.setattr(sys, "argv", ["gpuc", *args])
    with pytest.raises(SystemExit) as exited:
        app.main()
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    return err


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("GPUC_CLUSTER", "GPUC_BACKEND", "GPUC_SLURM_CONFIG", "GPUC_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(bootstrap, "SlurmCli", FakeSinfo)
    return tmp_path / "home"


STARTS = ("up", "server", "scheduler")  # every command that starts a scheduler or an API on a backend


def _home_args(command: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    if command == "scheduler":  # no --home option: the environment names the state directory
        monkeypatch.setenv("GPUC_HOME", str(home))
        return []
    return ["--home", str(home)]


@pytest.mark.parametrize("command", STARTS)
def test_on_slurm_without_a_cluster_is_an_error_not_the_demo(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], home: Path, command: str
) -> None:
    err = _gpuc(monkeypatch, capsys, command, *_home_args(command, home, monkeypatch), "--backend", "slurm")
    assert "--backend slurm needs --cluster" in err and "gpuc site import-slurm" in err
    assert not home.exists()  # refused before the database is made


@pytest.mark.parametrize("command", STARTS)
def test_on_slurm_with_a_pool_slurm_lacks_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    home: Path,
    tmp_path: Path,
    command: str,
) -> None:
    site = tmp_path / "site.toml"
    site.write_text(
        f'name = "site"\n[[sites]]\nname = "s"\n{_pool("h100", "H100", 2, 8)}{_pool("b200", "B200", 1, 8)}'
    )
    where = _home_args(command, home, monkeypatch)
    err = _gpuc(monkeypatch, capsys, command, *where, "--backend", "slurm", "--cluster", str(site))
    assert "pool 'b200' of cluster 'site' is not in Slurm: no node 'b200-1'" in err
    assert not home.exists()


def test_the_cluster_may_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(f'name = "site"\n[[sites]]\nname = "s"\n{_pool("h100", "H100", 2, 8)}')
    monkeypatch.setenv("GPUC_CLUSTER", str(site))
    check_backend_cluster(Settings(home=tmp_path, backend="slurm"), FakeSinfo())
    check_backend_cluster(Settings(home=tmp_path), FakeSinfo())  # local: nothing to check
