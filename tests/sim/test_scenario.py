"""Load scaling and default quotas."""

from __future__ import annotations

import math

import pytest

from gpucommons.errors import InvalidRequestError
from gpucommons.sim.scenario import proportional_quotas, scale_load
from tests.conftest import make_job

JOBS = [make_job(1, submit_s=100.0), make_job(2, submit_s=300.0), make_job(3, submit_s=1_100.0)]


@pytest.mark.parametrize(
    ("factor", "want"),
    [(1.0, [100.0, 300.0, 1_100.0]), (2.0, [100.0, 200.0, 600.0]), (0.5, [100.0, 500.0, 2_100.0])],
)
def test_scale_load_compresses_toward_the_first_submit(factor: float, want: list[float]) -> None:
    scaled = scale_load(JOBS, factor)
    assert [j.submit_s for j in scaled] == pytest.approx(want)
    assert [(j.id, j.duration_s) for j in scaled] == [(j.id, j.duration_s) for j in JOBS]


@pytest.mark.parametrize("factor", [0.0, -1.0, math.nan, math.inf])
def test_scale_load_rejects_bad_factors(factor: float) -> None:
    with pytest.raises(InvalidRequestError, match="--load"):
        scale_load(JOBS, factor)


def test_proportional_quotas() -> None:
    jobs = [
        make_job(1, 2, tenant="a", duration_s=300.0),  # 600 GPU-s
        make_job(2, 1, tenant="b", duration_s=300.0),  # 300 GPU-s
        make_job(3, 1, tenant="c", duration_s=100.0),  # 100 GPU-s
    ]
    assert proportional_quotas(jobs, 100) == {"a": 60, "b": 30, "c": 10}
    quotas = proportional_quotas(jobs, 7)
    assert quotas == {"a": 4, "b": 2, "c": 0}  # floors; the rest can only be borrowed
    assert proportional_quotas([], 100) == {}
