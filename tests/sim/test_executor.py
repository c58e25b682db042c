"""The simulated executor: finish events, stale events after a preemption, restart overhead."""

from __future__ import annotations

import pytest

from gpucommons.domain.job import Placement
from gpucommons.sim.executor import SimulatedExecutor
from gpucommons.sim.kernel import EventQueue
from tests.conftest import make_job

PLACEMENT = Placement(((0, (0, 1)),))


def test_finish_after_the_duration() -> None:
    finishes: EventQueue[tuple[int, int]] = EventQueue()
    executor = SimulatedExecutor(finishes)
    executor.start(make_job(1, 2, duration_s=100.0), PLACEMENT, 10.0)
    time_s, (job_id, version) = finishes.pop()
    assert (time_s, job_id) == (110.0, 1)
    assert executor.is_current(job_id, version)
    assert executor.loss_gpu_s == 0.0


def test_preemption_makes_the_finish_stale_and_restart_pays_overhead() -> None:
    finishes: EventQueue[tuple[int, int]] = EventQueue()
    executor = SimulatedExecutor(finishes, restart_overhead_s=30.0)
    job = make_job(1, 2, duration_s=100.0)
    executor.start(job, PLACEMENT, 0.0)
    executor.preempt(1, 40.0)
    executor.start(job, PLACEMENT, 50.0)
    stale_t, stale = finishes.pop()
    live_t, live = finishes.pop()
    assert stale_t == 100.0 and not executor.is_current(*stale)
    assert live_t == pytest.approx(50.0 + 60.0 + 30.0)
    assert executor.is_current(*live)
    assert executor.loss_gpu_s == pytest.approx(30.0 * 2)
