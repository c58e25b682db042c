"""Orderings: multifactor fair share (2^(-U/S)) and discretized LAS levels."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gpucommons.policy.ordering.fairshare import MultifactorOrdering
from gpucommons.policy.ordering.fifo import FifoOrdering
from gpucommons.policy.ordering.las import LasOrdering, LasQueues
from tests.conftest import make_cluster, make_job, make_snapshot, pending

CLUSTER = make_cluster(("p", 2, 8))
DAY_S = 86_400.0


@dataclass(frozen=True)
class FactorCase:
    name: str
    usage: dict[str, float]
    want: dict[str, float]
    quotas: dict[str, int] = field(default_factory=dict)


FACTOR_CASES = [
    FactorCase("no usage at all: everyone gets 1", {}, {"a": 1.0, "b": 1.0}),
    FactorCase("equal shares, 3:1 usage", {"a": 300.0, "b": 100.0}, {"a": 2.0**-1.5, "b": 2.0**-0.5}),
    FactorCase("used exactly its share: 0.5", {"a": 100.0, "b": 100.0}, {"a": 0.5, "b": 0.5}),
    FactorCase(
        "shares from quotas: 3:1 usage with 3:1 quotas is even",
        {"a": 300.0, "b": 100.0},
        {"a": 0.5, "b": 0.5},
        quotas={"a": 3, "b": 1},
    ),
    FactorCase(
        "idle tenant with a share gets 1, heavy user gets 2^(-1/share)",
        {"a": 500.0},
        {"a": 2.0 ** (-1 / 0.5), "b": 1.0},
        quotas={"a": 1, "b": 1},
    ),
    FactorCase(
        "a tenant with no quota when others have one gets 0",
        {"a": 10.0},
        {"a": 2.0**-1.0, "b": 0.0},
        quotas={"a": 4},
    ),
]


@pytest.mark.parametrize("case", FACTOR_CASES, ids=lambda c: c.name)
def test_fairshare_factor(case: FactorCase) -> None:
    snapshot = make_snapshot(CLUSTER, usage=case.usage, quotas=case.quotas)
    factors = MultifactorOrdering().fairshare_factors(snapshot, case.want)
    for tenant, want in case.want.items():
        assert factors[tenant] == pytest.approx(want), tenant


@pytest.mark.parametrize(
    ("name", "usage", "ages_s", "want_order"),
    [
        ("lighter user first despite arriving later", {"a": 900.0, "b": 100.0}, (0.0, 10.0), [2, 1]),
        ("equal usage: first come first served", {"a": 100.0, "b": 100.0}, (0.0, 10.0), [1, 2]),
        ("a week of waiting outweighs a small usage gap", {"a": 101.0, "b": 99.0}, (0.0, 7 * DAY_S), [1, 2]),
    ],
)
def test_fairshare_order(
    name: str, usage: dict[str, float], ages_s: tuple[float, float], want_order: list[int]
) -> None:
    now = ages_s[1]
    waiting = (make_job(1, tenant="a", submit_s=0.0), make_job(2, tenant="b", submit_s=ages_s[1]))
    ordered = MultifactorOrdering().order(make_snapshot(CLUSTER, waiting, usage=usage), now)
    assert [p.job.id for p in ordered] == want_order, name


def test_fifo_order_is_submit_time_then_id() -> None:
    waiting = (make_job(3, submit_s=5.0), make_job(2, submit_s=5.0), make_job(1, submit_s=9.0))
    ordered = FifoOrdering().order(make_snapshot(CLUSTER, waiting), 10.0)
    assert [p.job.id for p in ordered] == [2, 3, 1]


@pytest.mark.parametrize(
    ("attained_gpu_s", "want_level"),
    [(0.0, 0), (3_599.9, 0), (3_600.0, 1), (35_999.0, 1), (36_000.0, 2), (1e9, 2)],
)
def test_las_level(attained_gpu_s: float, want_level: int) -> None:
    assert LasQueues().level(attained_gpu_s) == want_level


def test_las_order_lower_queue_first_then_fifo() -> None:
    waiting = (
        pending(make_job(1, submit_s=0.0), attained_gpu_s=5_000.0),  # queue 1
        pending(make_job(2, submit_s=1.0), attained_gpu_s=0.0),  # queue 0
        pending(make_job(3, submit_s=2.0), attained_gpu_s=40_000.0),  # queue 2
        pending(make_job(4, submit_s=3.0), attained_gpu_s=100.0),  # queue 0
    )
    ordered = LasOrdering().order(make_snapshot(CLUSTER, waiting), 10.0)
    assert [p.job.id for p in ordered] == [2, 4, 1, 3]
