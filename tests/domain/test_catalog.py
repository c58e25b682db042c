"""The accelerator catalog, cluster expansion and the small domain helpers."""

from __future__ import annotations

import pytest

from gpucommons.domain.accelerators import CATALOG, get_model
from gpucommons.domain.cluster import Cluster, Pool, Site, Topology
from gpucommons.domain.job import Placement
from gpucommons.errors import UnknownNameError
from tests.conftest import make_job

REQUIRED_MODELS = ("A100", "H100", "H200", "B200", "GB200", "L40S", "MI300X", "RNGD", "ATOM", "REBEL100")


@pytest.mark.parametrize("name", REQUIRED_MODELS)
def test_catalog_has_model(name: str) -> None:
    model = CATALOG[name]
    assert model.name == name
    assert model.memory_gb > 0 and model.bf16_tflops > 0 and model.tdp_w > 0 and model.relative_speed > 0


def test_a100_is_the_speed_reference_and_npus_are_marked() -> None:
    assert CATALOG["A100"].relative_speed == 1.0
    assert {m.name for m in CATALOG.values() if m.kind == "npu"} >= {"RNGD", "ATOM", "REBEL100"}
    assert CATALOG["RNGD"].partitions == (2, 4, 8)


def test_get_model_is_case_insensitive_and_names_the_known_ones() -> None:
    assert get_model("h200") is CATALOG["H200"]
    with pytest.raises(UnknownNameError, match=r"'Z100'.*H100"):
        get_model("Z100")


def test_cluster_build_numbers_nodes_densely() -> None:
    pools = (
        Pool("big", "s", CATALOG["H100"], 3, 8, topology=Topology(block_nodes=2)),
        Pool("small", "s", CATALOG["L40S"], 2, 4),
    )
    cluster = Cluster.build("c", (Site("s"),), pools)
    assert [n.index for n in cluster.nodes] == [0, 1, 2, 3, 4]
    assert [n.name for n in cluster.nodes] == ["big-1", "big-2", "big-3", "small-1", "small-2"]
    assert [n.block for n in cluster.nodes] == [0, 0, 1, 0, 0]
    assert [n.gpus for n in cluster.nodes] == [8, 8, 8, 4, 4]
    assert [n.model for n in cluster.nodes] == ["H100"] * 3 + ["L40S"] * 2
    assert cluster.total_gpus == 32 and cluster.max_gpus_per_node == 8
    assert cluster.pool_by_name["small"].gpus == 8
    assert cluster.site_by_name["s"].pue == 1.3


def test_placement_and_job_helpers() -> None:
    placement = Placement(((3, (0, 1, 2)), (5, (4,))))
    assert placement.gpus == 4 and placement.nodes == (3, 5)
    assert make_job(1).accepts("anything")
    only = make_job(2, models=("H100",))
    assert only.accepts("H100") and not only.accepts("A100")
