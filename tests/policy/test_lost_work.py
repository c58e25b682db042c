"""The work a preemption would lose (``policy/lost_work.py``): since the last reported checkpoint,
else the last multiple of the declared interval, else the whole run; the vectorized form agrees with
the scalar one job by job."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpucommons.domain.job import Placement
from gpucommons.policy.lost_work import (
    lost_gpu_s,
    lost_gpu_s_columns,
    seconds_since_checkpoint,
    since_checkpoint_s,
    since_checkpoint_s_columns,
)
from gpucommons.policy.snapshot import RunningColumns, RunningJob
from tests.conftest import make_job


@pytest.mark.parametrize(
    ("started_s", "checkpoint_s", "interval_s", "now", "want_s"),
    [
        (100.0, None, None, 1_000.0, 900.0),  # nothing declared: the whole run
        (100.0, None, 300.0, 1_000.0, 0.0),  # 900 s = three intervals exactly
        (100.0, None, 300.0, 1_050.0, 50.0),
        (100.0, 800.0, 300.0, 1_000.0, 200.0),  # a report wins over the interval
        (100.0, 50.0, None, 1_000.0, 900.0),  # a checkpoint of an earlier run counts for nothing
        (100.0, None, 0.0, 1_000.0, 900.0),  # an interval of 0 declares nothing
        (1_000.0, None, None, 900.0, 0.0),  # not started yet
    ],
)
def test_seconds_since_checkpoint(
    started_s: float, checkpoint_s: float | None, interval_s: float | None, now: float, want_s: float
) -> None:
    assert seconds_since_checkpoint(started_s, checkpoint_s, interval_s, now) == pytest.approx(want_s)


def test_lost_work_counts_every_gpu_held() -> None:
    job = replace(make_job(1, 4), checkpoint_interval_s=600.0)
    running = RunningJob(job, Placement(((0, (0, 1, 2, 3)),)), started_s=0.0)
    assert since_checkpoint_s(running, 1_500.0) == 300.0
    assert lost_gpu_s(running, 1_500.0) == 1_200.0


@given(
    st.lists(
        st.tuples(
            st.integers(0, 8),
            st.floats(0, 10_000),
            st.one_of(st.none(), st.floats(1, 5_000)),
            st.one_of(st.none(), st.floats(0, 12_000)),
        ),
        min_size=1,
        max_size=20,
    ),
    st.floats(0, 12_000),
)
def test_columns_agree_with_the_scalar_rule(
    rows: list[tuple[int, float, float | None, float | None]], now: float
) -> None:
    running = []
    for i, (gpus, started_s, interval_s, checkpoint_s) in enumerate(rows):
        job = replace(make_job(i + 1, gpus), checkpoint_interval_s=interval_s)
        running.append(
            RunningJob(job, Placement(((0, tuple(range(gpus))),)), started_s, last_checkpoint_s=checkpoint_s)
        )
    columns = RunningColumns.of(running)
    by_id = {r.job.id: r for r in running}
    ids = columns.ids().tolist()
    since = since_checkpoint_s_columns(columns, now)
    lost = lost_gpu_s_columns(columns, now)
    for row, job_id in enumerate(ids):
        assert since[row] == pytest.approx(since_checkpoint_s(by_id[job_id], now))
        assert lost[row] == pytest.approx(lost_gpu_s(by_id[job_id], now))
    assert np.all(since >= 0)
