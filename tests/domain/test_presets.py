"""Cluster presets and the TOML cluster format."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from gpucommons.clusterfile import load_cluster, parse_cluster, preset_names
from gpucommons.errors import ConfigError, UnknownNameError


def gpus_by_model(name: str) -> Counter[str]:
    counts: Counter[str] = Counter()
    for node in load_cluster(name).nodes:
        counts[node.model] += node.gpus
    return counts


def test_presets_are_listed() -> None:
    assert {"philly", "korea-2026", "demo"} <= set(preset_names())


def test_philly_preset() -> None:
    cluster = load_cluster("philly")
    assert len(cluster.nodes) == 552
    assert cluster.total_gpus == 2_490
    assert Counter(n.gpus for n in cluster.nodes) == {8: 231, 2: 321}


def test_korea_2026_preset() -> None:
    cluster = load_cluster("korea-2026")
    assert cluster.total_gpus == 10_456
    assert gpus_by_model("korea-2026") == {"H200": 2_296, "B200": 8_160}
    assert all(n.gpus == 8 for n in cluster.nodes)


def test_demo_preset_loads() -> None:
    cluster = load_cluster("demo")
    assert cluster.name == "demo"
    assert cluster.total_gpus > 0
    assert {p.site for p in cluster.pools} <= {s.name for s in cluster.sites}


def test_every_preset_parses() -> None:
    for name in preset_names():
        assert load_cluster(name).total_gpus > 0, name


GOOD = """
name = "mine"
[[models]]
name = "X1"
vendor = "acme"
memory_gb = 64
bf16_tflops = 500
tdp_w = 500
relative_speed = 1.2
[[sites]]
name = "daejeon"
region = "non-capital"
power_cap_mw = 2.0
[[pools]]
name = "x1"
site = "daejeon"
model = "X1"
nodes = 3
gpus_per_node = 4
topology = { nvlink_domain_nodes = 1, block_nodes = 2 }
[[pools]]
name = "h100"
site = "daejeon"
model = "H100"
nodes = 1
gpus_per_node = 8
"""


def test_toml_file_with_a_custom_model(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(GOOD)
    cluster = load_cluster(str(path))
    assert cluster.total_gpus == 20
    assert cluster.pool_by_name["x1"].model.vendor == "acme"
    assert [n.block for n in cluster.nodes] == [0, 0, 1, 0]
    assert cluster.site_by_name["daejeon"].power_cap_mw == 2.0


@pytest.mark.parametrize(
    ("name", "text", "want"),
    [
        ("negative GPUs", GOOD.replace("gpus_per_node = 4", "gpus_per_node = -4"), "gpus_per_node"),
        ("negative nodes", GOOD.replace("nodes = 3", "nodes = -3"), "nodes"),
        (
            "unknown site",
            GOOD.replace('site = "daejeon"\nmodel = "H100"', 'site = "seoul"\nmodel = "H100"'),
            "seoul",
        ),
        ("unknown model", GOOD.replace('model = "H100"', 'model = "Q7"'), "Q7"),
        ("pool name twice", GOOD.replace('name = "h100"', 'name = "x1"'), "used twice"),
        ("no pools", GOOD.split("[[pools]]")[0], "pools"),
        ("unknown key", GOOD + 'flavour = "x"\n', "flavour"),
        ("PUE below 1", GOOD.replace("power_cap_mw = 2.0", "pue = 0.5"), "pue"),
        ("not TOML", "name = [unclosed", "not valid TOML"),
    ],
)
def test_bad_cluster_text(name: str, text: str, want: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_cluster(text, "cluster.toml")
    message = str(err.value)
    assert message.startswith("cluster.toml") and want in message and "\n" not in message, name


def test_unknown_cluster_name_lists_presets() -> None:
    with pytest.raises(UnknownNameError, match="philly"):
        load_cluster("atlantis")


@pytest.mark.parametrize(("name", "share"), [("korea-2030-npu25", 0.25), ("korea-2030-npu50", 0.5)])
def test_the_2030_presets_hold_their_planned_npu_share_and_are_speed_aware(name: str, share: float) -> None:
    cluster = load_cluster(name)
    npus = sum(p.gpus for p in cluster.pools if p.model.kind == "npu")
    assert cluster.total_gpus == 200_000 and npus == share * cluster.total_gpus
    assert cluster.speeds is not None and cluster.speeds.reference == "H100"
    rngd = next(n.index for n in cluster.nodes if n.model == "RNGD")
    assert cluster.run_speed("inference", [rngd]) == pytest.approx(0.38)  # vendor figures, in H100s
    assert {p.model.partitions for p in cluster.pools if p.model.name == "RNGD"} == {(2, 4, 8)}  # slices kept
