"""Best-fit placement: the tightest node, the fewest nodes for a gang, one pool per gang,
all-or-nothing."""

from __future__ import annotations

import pytest

from gpucommons.domain.cluster import Cluster
from gpucommons.policy.capacity import Capacity
from gpucommons.policy.placement.best_fit import BestFitPlacer
from tests.conftest import free_state, make_cluster, make_job


def capacity_with(cluster: Cluster, used: dict[int, int]) -> Capacity:
    """Capacity with ``used[node]`` GPUs of each listed node already taken."""
    capacity = Capacity(cluster)
    for node, count in used.items():
        capacity.allocate(node, count)
    return capacity


THREE = make_cluster(("p", 3, 8))
FREE_3_5_8 = {0: 5, 1: 3}  # free GPUs per node: 3, 5, 8


@pytest.mark.parametrize(
    ("gpus", "want_node"),
    [(1, 0), (2, 0), (3, 0), (4, 1), (5, 1), (6, 2), (8, 2)],
)
def test_single_node_job_takes_the_tightest_node(gpus: int, want_node: int) -> None:
    capacity = capacity_with(THREE, FREE_3_5_8)
    placement = BestFitPlacer().place(make_job(1, gpus), capacity)
    assert placement is not None
    assert placement.nodes == (want_node,)
    assert placement.gpus == gpus


def test_tightest_node_across_pools() -> None:
    cluster = make_cluster(("small", 1, 4), ("big", 1, 8))
    for gpus, want in ((3, 0), (4, 0), (5, 1)):
        placement = BestFitPlacer().place(make_job(1, gpus), Capacity(cluster))
        assert placement is not None and placement.nodes == (want,), gpus


def test_accepted_models_restrict_the_pools() -> None:
    cluster = make_cluster(("a100", 1, 4, "A100"), ("h100", 1, 8, "H100"))
    placement = BestFitPlacer().place(make_job(1, 2, models=("H100",)), Capacity(cluster))
    assert placement is not None and placement.nodes == (1,)
    assert BestFitPlacer().place(make_job(2, 2, models=("B200",)), Capacity(cluster)) is None


FOUR = make_cluster(("p", 4, 8))
FREE_4_4_8_8 = {0: 4, 1: 4}


@pytest.mark.parametrize(
    ("gpus", "per_node", "want_nodes", "want_per_node"),
    [
        (16, None, 2, None),  # two whole nodes rather than two halves and a whole
        (12, None, 2, None),  # one whole node and one half
        (20, None, 3, None),
        (16, 4, 4, 4),  # a fixed shape takes exactly that many per node
        (16, 8, 2, 8),
    ],
)
def test_gang_takes_the_fewest_nodes(
    gpus: int, per_node: int | None, want_nodes: int, want_per_node: int | None
) -> None:
    capacity = capacity_with(FOUR, FREE_4_4_8_8)
    placement = BestFitPlacer().place(make_job(1, gpus, gpus_per_node=per_node), capacity)
    assert placement is not None
    assert placement.gpus == gpus
    assert len(placement.nodes) == want_nodes
    assert len(set(placement.nodes)) == want_nodes
    if want_per_node is not None:
        assert all(len(g) == want_per_node for _, g in placement.node_gpus)


def test_fixed_shape_prefers_the_tightest_nodes() -> None:
    capacity = capacity_with(FOUR, FREE_4_4_8_8)
    placement = BestFitPlacer().place(make_job(1, 8, gpus_per_node=4), capacity)
    assert placement is not None and sorted(placement.nodes) == [0, 1]


def test_gang_stays_in_one_pool_and_fails_whole() -> None:
    cluster = make_cluster(("p1", 2, 8), ("p2", 1, 8))
    capacity = capacity_with(cluster, {0: 4})  # 20 free GPUs in total, at most 12 in one pool
    before = free_state(capacity)
    assert BestFitPlacer().place(make_job(1, 16), capacity) is None
    assert free_state(capacity) == before
    assert capacity.free_total == 20


def test_fixed_shape_that_does_not_fit_allocates_nothing() -> None:
    capacity = capacity_with(FOUR, {0: 6, 1: 6, 2: 6})  # free 2, 2, 2, 8
    before = free_state(capacity)
    assert BestFitPlacer().place(make_job(1, 12, gpus_per_node=4), capacity) is None
    assert free_state(capacity) == before


def test_placement_takes_free_indices_and_allocates_them() -> None:
    capacity = capacity_with(THREE, FREE_3_5_8)
    placement = BestFitPlacer().place(make_job(1, 2), capacity)
    assert placement is not None
    ((node, gpus),) = placement.node_gpus
    assert gpus == (5, 6)
    assert capacity.free_indices(node) == (7,)
