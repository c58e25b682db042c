"""Graceful, checkpoint-aware preemption through the live engine, with real local processes, on SQLite
and PostgreSQL (design note 0016, "In the live service").

A high-priority job preempts a running one: the victim gets SIGTERM and its grace period, writes a
checkpoint in its own directory and exits; it is charged up to the signal, requeued, and its next run
sees ``GPUC_RESTART_COUNT=1`` and resumes from the checkpoint in the same directory. The job that
preempted it starts only once it has gone (no two runs on one GPU), and meanwhile the engine goes on:
another job elsewhere starts during the grace period. A victim that ignores SIGTERM is killed when its
grace period ends, however long the engine's interval. A checkpoint reported while a job runs reaches
the scheduler's view of it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from gpucommons.backends.processes import alive, parse_ref
from gpucommons.engine.ports import LaunchDeferredError, LaunchSpec
from gpucommons.policy.decisions import CycleResult, Preemption
from gpucommons.store.base import to_s
from gpucommons.store.jobs import AllocationRow, JobRow, record_checkpoint
from gpucommons.store.state_store import LiveStore
from gpucommons.store.usage import UsageRow
from tests.components import wait_until
from tests.engine.conftest import World
from tests.engine.test_live_engine import job, step_until
from tests.job_release import Release, releases

__all__ = ["releases"]

pytestmark = pytest.mark.timeout(120)

VICTIM = """\
echo "run $GPUC_RESTART_COUNT"
if [ "$GPUC_RESTART_COUNT" = 1 ]; then echo "resumed from $(cat "$HOME/state")"; exit 0; fi
trap '{save}; echo step-41 > "$HOME/state"; touch "$GPUC_CHECKPOINT_FILE"; echo "exit $(date +%s.%N)"; \
exit 0' TERM
echo ready
while :; do sleep 0.05; done
"""


def _log(world: World, job_id: int) -> str:
    path = world.root / "jobs" / str(job_id) / "stdout.log"
    return path.read_text() if path.exists() else ""


def _time_after(text: str, word: str) -> float:
    return float(text.split(f"{word} ", 1)[1].split()[0])


def test_a_victim_checkpoints_is_requeued_and_resumes_while_the_engine_goes_on(
    world: World, releases: Callable[[str], Release]
) -> None:
    engine = world.engine()
    save, filler_runs, high_runs, other_runs = (releases(n) for n in ("save", "filler", "high", "other"))
    filler = world.submit(filler_runs.command, gpus=4, gpus_per_node=4, priority_class="high")
    victim = world.submit(
        ["sh", "-c", VICTIM.format(save=save.shell)],
        gpus=8,
        gpus_per_node=8,
        grace_period="60s",
        checkpoint_interval="10m",
    )
    step_until(engine, lambda: "ready" in _log(world, victim) and job(world, filler).state == "running")
    high_job = ["sh", "-c", f'echo "start $(date +%s.%N)"; {high_runs.shell}']
    high = world.submit(high_job, gpus=8, gpus_per_node=8, priority_class="high")
    report = engine.step()
    assert (report.preempted, report.deferred, report.started) == (1, 1, 0)  # at once: no wait
    row = job(world, victim)
    assert (row.state, row.restarts, row.reason_code) == ("pending", 1, "preempted")
    assert row.signalled_at is not None and row.grace_s == 60.0
    assert job(world, high).backend_ref.startswith("pending:")  # decided, not launched

    other = world.submit(["sh", "-c", f"echo started; {other_runs.shell}"], gpus=4, gpus_per_node=4)
    report = engine.step()  # the victim still checkpoints: another job elsewhere starts meanwhile
    assert (report.started, report.deferred) == (1, 1)
    wait_until(lambda: "started" in _log(world, other), 30, "the other job never started")
    assert "exit" not in _log(world, victim) and "start" not in _log(world, high)

    save.release()  # it writes its checkpoint and exits, within its grace period
    step_until(engine, lambda: "start " in _log(world, high))
    exited_s = _time_after(_log(world, victim), "exit")
    assert _time_after(_log(world, high), "start") >= exited_s  # never two runs on its GPUs
    row = job(world, victim)
    assert row.signalled_at is not None and row.last_checkpoint_at is not None
    signalled_s = to_s(row.signalled_at)
    assert signalled_s <= to_s(row.last_checkpoint_at) <= exited_s + 0.01  # the file it touched
    with world.sessions() as s:
        (first,) = s.scalars(select(UsageRow).where(UsageRow.job_id == victim)).all()
    ended_s = to_s(first.ended_at)
    assert signalled_s <= ended_s < signalled_s + 1.0 < exited_s + 1.0  # charged up to the signal
    assert ended_s < exited_s  # not for its grace period

    high_runs.release()
    filler_runs.release()
    other_runs.release()
    step_until(engine, lambda: job(world, victim).state == "finished", 60)
    log = _log(world, victim)
    assert "run 0" in log and "run 1" in log and "resumed from step-41" in log, log
    assert job(world, victim).exit_code == 0


def test_a_victim_that_ignores_sigterm_is_killed_when_its_grace_period_ends(
    world: World, releases: Callable[[str], Release]
) -> None:
    """The engine's loop steps again when a stopping run's grace period ends: with a 5 s interval,
    the victim of a 1 s grace period is gone about a second after its signal, not five."""
    engine = world.engine()
    high_runs: Release = releases("high")
    victim = world.submit(
        ["sh", "-c", "trap 'echo \"term $(date +%s.%N)\"' TERM; echo ready; while :; do sleep 0.05; done"],
        gpus=8,
        gpus_per_node=8,
        grace_period="1s",
    )
    filler = world.submit(releases("filler").command, gpus=8, gpus_per_node=8, priority_class="high")
    stop = threading.Event()
    loop = threading.Thread(target=engine.run, args=(stop, 5.0), daemon=True)
    loop.start()
    try:
        engine.wake.set()
        wait_until(
            lambda: "ready" in _log(world, victim) and job(world, filler).state == "running", 30, "no start"
        )
        parsed = parse_ref(job(world, victim).backend_ref)
        assert parsed is not None
        high = world.submit(["sh", "-c", f'echo "start $(date +%s.%N)"; {high_runs.shell}'], gpus=8,
                            gpus_per_node=8, priority_class="high")  # fmt: skip
        engine.wake.set()
        wait_until(lambda: "term" in _log(world, victim), 30, "the victim was never signalled")
        wait_until(lambda: not alive(*parsed), 30, "the victim outlived its grace period", poll_s=0.02)
        gone_s = time.time()
        term_s = _time_after(_log(world, victim), "term")
        assert term_s + 1.0 - 0.1 <= gone_s <= term_s + 1.0 + 1.5  # its grace period, and no more
        # the job that preempted it starts at the step after, not at the next interval
        wait_until(lambda: "start " in _log(world, high), 4.0, "the preempting job waited for the interval")
        assert _time_after(_log(world, high), "start") >= gone_s - 0.05
    finally:
        stop.set()
        engine.wake.set()
        loop.join(30)
        high_runs.release()


def test_a_reported_checkpoint_reaches_the_schedulers_view_of_the_running_job(
    world: World, releases: Callable[[str], Release]
) -> None:
    """The checkpoint stamps the job (migration 0018), so the engine's incremental view reads it again:
    the running job's ``last_checkpoint_s``, with its declared interval on the job."""
    engine = world.engine()
    runs: Release = releases("runs")
    job_id = world.submit(runs.command, checkpoint_interval="15m")
    step_until(engine, lambda: job(world, job_id).state == "running")
    state = engine.state

    def view(now: float) -> tuple[float | None, float | None]:
        with state.transaction() as tx:
            snapshot = tx.cycle_store(set(), 7 * 86_400.0, {}).snapshot(now)
            running = snapshot.running[job_id]
            return running.last_checkpoint_s, running.job.checkpoint_interval_s

    now = time.time()
    assert view(now) == (None, 900.0)
    with world.sessions() as s:
        before = s.get(JobRow, job_id).change_stamp  # type: ignore[union-attr]
        at = datetime.now(UTC)
        assert record_checkpoint(s, job_id, at)
        s.commit()
        assert s.get(JobRow, job_id).change_stamp != before  # type: ignore[union-attr]
    seen_s, interval_s = view(time.time())
    assert seen_s == pytest.approx(to_s(at)) and interval_s == 900.0
    runs.release()
    step_until(engine, lambda: job(world, job_id).state == "finished")


def test_an_earlier_runs_checkpoint_saves_the_next_run_nothing(
    world: World, releases: Callable[[str], Release]
) -> None:
    """A checkpoint made before a run started (its earlier run's, in its grace period) is no
    checkpoint of this run: the scheduler sees none."""
    engine = world.engine()
    runs = releases("runs")
    job_id = world.submit(runs.command)
    with world.sessions() as s:
        assert record_checkpoint(s, job_id, datetime(2020, 1, 1, tzinfo=UTC))
        s.commit()
    step_until(engine, lambda: job(world, job_id).state == "running")
    with engine.state.transaction() as tx:
        running = tx.cycle_store(set(), 7 * 86_400.0, {}).snapshot(time.time()).running[job_id]
    assert running.last_checkpoint_s is None
    runs.release()
    step_until(engine, lambda: job(world, job_id).state == "finished")


def test_a_victim_placed_again_at_once_waits_for_its_earlier_run_and_is_not_ended_by_it(
    world: World, releases: Callable[[str], Release]
) -> None:
    """Room for the victim elsewhere while its earlier run still checkpoints: its next run is decided,
    and deferred until the earlier one has gone; that run's end belongs to the earlier segment (already
    metered), not to the start waiting to be launched."""
    engine = world.engine()
    save, hold, other = releases("save"), releases("hold"), releases("other")
    quad: dict[str, Any] = {"gpus": 4, "gpus_per_node": 4}
    world.submit(hold.command, priority_class="high", **quad)
    victim = world.submit(["sh", "-c", VICTIM.format(save=save.shell)], grace_period="60s", **quad)
    world.submit(hold.command, priority_class="high", **quad)
    blocker = world.submit(other.command, preemptible=False, **quad)
    step_until(engine, lambda: "ready" in _log(world, victim) and job(world, blocker).state == "running")
    earlier = parse_ref(job(world, victim).backend_ref)
    assert earlier is not None
    high = world.submit(
        ["sh", "-c", f'echo "start $(date +%s.%N)"; {hold.shell}'], priority_class="high", **quad
    )
    assert engine.step().preempted == 1
    other.release()  # room elsewhere: the victim is placed there while its earlier run still stops
    step_until(engine, lambda: job(world, victim).state == "running")
    assert job(world, victim).backend_ref.startswith("pending:")
    assert engine.step().deferred == 2 and "run 1" not in _log(world, victim)
    save.release()
    # gone before the next step: its end is what that step's poll sees first, before the launch
    wait_until(lambda: not alive(*earlier), 30, "the earlier run never exited", poll_s=0.02)
    step_until(engine, lambda: "run 1" in _log(world, victim) and "start " in _log(world, high))
    step_until(engine, lambda: job(world, victim).state != "running")
    row = job(world, victim)
    assert (row.state, row.exit_code, row.restarts) == ("finished", 0, 1), row.reason
    assert "resumed from step-41" in _log(world, victim)
    hold.release()


def test_a_start_preempted_before_its_deferred_launch_is_charged_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = world.engine()

    def busy(spec: LaunchSpec) -> str:
        raise LaunchDeferredError("still held")

    monkeypatch.setattr(engine.backend, "launch", busy)
    job_id = world.submit(["true"], gpus=2)
    assert engine.step().deferred == 1
    assert job(world, job_id).backend_ref.startswith("pending:")
    with world.sessions() as s:
        store = LiveStore(s, engine.cluster)
        now = time.time()
        store.snapshot(now)
        store.record(CycleResult((), (Preemption(job_id, 0, "reclaimed"),), ()), now)
        s.commit()
    row = job(world, job_id)
    assert (row.state, row.restarts, row.backend_ref) == ("pending", 1, "")
    with world.sessions() as s:
        assert s.scalars(select(UsageRow).where(UsageRow.job_id == job_id)).all() == []
        assert s.scalars(select(AllocationRow).where(AllocationRow.job_id == job_id)).all() == []
