"""Even gang shapes for backends that need the same GPU count on every node."""

from __future__ import annotations

import pytest

from gpucommons.policy.placement.shapes import even_gang
from tests.conftest import make_cluster, make_job


@pytest.mark.parametrize(
    ("gpus", "per_node", "want"),
    [
        (4, None, 4),
        (8, None, 8),
        (12, None, 6),
        (16, None, 8),
        (24, None, 8),
        (7, None, 7),
        (9, None, 3),
        (11, None, 1),
        (12, 4, 4),
    ],
)
def test_even_gang_prefers_one_node_then_the_largest_even_split(
    gpus: int, per_node: int | None, want: int
) -> None:
    cluster = make_cluster(("p", 4, 8))
    job = make_job(1, gpus, gpus_per_node=per_node)
    assert even_gang(job, cluster).gpus_per_node == want
