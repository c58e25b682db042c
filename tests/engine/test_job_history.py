"""A job's history (design note 0017) as the live engine records it, on SQLite and PostgreSQL.

With real local processes: a job is submitted, starts on its GPUs, is preempted by a high-priority
job, runs again on other GPUs once they free, and fails with its exit code; its events say all of
that in order, the GPUs stay on record after the allocations are gone, and its log shows where the
rerun starts. With a scripted backend: a backend requeue, a lost run given up on, a failed launch and
a cancel each leave their events, and every ended job has exactly one ``ended`` event.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from gpucommons.engine.live import EngineOptions
from gpucommons.engine.ports import BackendEvent, LaunchRetry
from gpucommons.store.job_events import JobEventRow, last_gpus, list_events
from gpucommons.store.jobs import AllocationRow, JobRow
from tests.engine.conftest import World
from tests.engine.test_backend_events import NEVER_RUN, ScriptedBackend, engine_with, row
from tests.engine.test_concurrency import api_cancel
from tests.engine.test_live_engine import step_until
from tests.job_release import Release, releases

__all__ = ["releases"]

pytestmark = pytest.mark.timeout(120)
H100 = ["H100"]  # the award pays for H100s only: the two 8-GPU nodes


def history(world: World, job_id: int) -> list[tuple[str, int, str, int | None]]:
    """(kind, run, detail, by_job_id) of each event, in order."""
    with world.sessions() as s:
        return [(e.kind, e.run, e.detail, e.by_job_id) for e in list_events(s, job_id)]


def gpus_of(world: World, job_id: int) -> list[list[str]]:
    """The GPUs of each of the job's starts, in order."""
    with world.sessions() as s:
        return [list(e.gpus or ()) for e in list_events(s, job_id) if e.kind == "started"]


def nodes_of(gpus: list[str]) -> set[str]:
    return {g.split(":")[0] for g in gpus}


def test_a_preempted_job_reruns_elsewhere_and_its_history_and_log_say_so(
    world: World, releases: Callable[[str], Release]
) -> None:
    first_run, second_run, filler_runs, preemptor_runs = (
        releases(n) for n in ("first", "second", "filler", "preemptor")
    )
    script = (
        'if [ "${GPUC_RESTART_COUNT:-0}" = 0 ]; then echo "first output"; '
        f"{first_run.shell}; else echo 'second output'; {second_run.shell}; exit 3; fi"
    )
    victim = world.submit(["sh", "-c", script], gpus=8, models=H100)
    filler = world.submit(filler_runs.command, gpus=8, preemptible=False, models=H100)
    engine = world.engine()
    step_until(engine, lambda: {row(world, j).state for j in (victim, filler)} == {"running"})
    preemptor = world.submit(preemptor_runs.command, gpus=8, priority_class="high", models=H100)
    step_until(engine, lambda: row(world, preemptor).state == "running")
    assert (row(world, victim).state, row(world, victim).restarts) == ("pending", 1)

    filler_runs.release()  # its node frees: the victim runs again there
    step_until(
        engine, lambda: row(world, victim).state == "running" and ":" in row(world, victim).backend_ref
    )
    second_run.release()
    preemptor_runs.release()
    step_until(
        engine, lambda: all(row(world, j).state in ("finished", "failed") for j in (victim, preemptor))
    )

    assert history(world, victim) == [
        ("submitted", 1, "", None),
        ("started", 1, "", None),
        ("preempted", 1, "displaced by higher priority", preemptor),
        ("started", 2, "", None),
        ("ended", 2, "failed: exit code 3", None),
    ]
    before, after = gpus_of(world, victim)
    (preemptor_gpus,) = gpus_of(world, preemptor)
    (filler_gpus,) = gpus_of(world, filler)
    assert len(before) == len(after) == 8
    assert nodes_of(before) == nodes_of(preemptor_gpus)  # the preemptor took the victim's node
    assert nodes_of(after) == nodes_of(filler_gpus) != nodes_of(before)  # the rerun: the freed one
    with world.sessions() as s:
        assert s.scalar(select(func.count()).select_from(AllocationRow)) == 0  # gone, as ever
        assert last_gpus(s, victim) == after  # but where it ran is kept
        events = list_events(s, victim)
    preempted, ended = events[2], events[-1]
    assert preempted.backend_ref and ended.backend_ref == row(world, victim).backend_ref  # each run's
    assert preempted.backend_ref != ended.backend_ref
    assert {e.backend_ref for e in events if e.kind == "started"} == {None}  # named once launched

    log = (world.root / "jobs" / str(victim) / "stdout.log").read_text()
    header = rf"=== run 2 of job {victim}, started \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ on {','.join(after)} ==="
    assert re.fullmatch(rf"first output\n{header}\nsecond output\n", log), log
    errors = (world.root / "jobs" / str(victim) / "stderr.log").read_text()
    assert re.fullmatch(rf"{header}\n", errors), errors  # the error stream is separated the same way


def ended_events(world: World) -> dict[int, int]:
    """Job id -> its number of ``ended`` events, for every job that has ended."""
    with world.sessions() as s:
        ended = set(s.scalars(select(JobRow.id).where(JobRow.state.not_in(("pending", "running")))))
        counts = dict(
            s.execute(
                select(JobEventRow.job_id, func.count())
                .where(JobEventRow.kind == "ended")
                .group_by(JobEventRow.job_id)
            ).all()
        )
    return {job_id: counts.get(job_id, 0) for job_id in ended}


def test_requeues_losses_failed_launches_and_cancels_are_recorded(world: World) -> None:
    backend = ScriptedBackend()
    options = EngineOptions(
        world.root / "jobs", max_lost_requeues=0, launch_retry=LaunchRetry(max_attempts=1)
    )
    engine = engine_with(world, backend, options)
    requeued, lost, refused, cancelled, waiting = (world.submit(NEVER_RUN) for _ in range(5))
    backend.refuse_jobs = {refused}
    api_cancel(world, waiting)  # cancelled while it waits: before any cycle
    engine.step()
    refs = {j: row(world, j).backend_ref for j in (requeued, lost, cancelled)}
    at = row(world, requeued).started_at
    assert at is not None
    backend.events = [
        BackendEvent(requeued, "requeued", at.timestamp() + 1, refs[requeued], detail="node failure"),
        BackendEvent(lost, "lost", at.timestamp() + 1, refs[lost], detail="process vanished"),
    ]
    api_cancel(world, cancelled)
    engine.step()
    backend.events = [BackendEvent(cancelled, "cancelled", at.timestamp() + 2, refs[cancelled])]
    engine.step()

    assert [(k, r, d) for k, r, d, _ in history(world, requeued)][:4] == [
        ("submitted", 1, ""),
        ("started", 1, ""),
        ("requeued", 1, "node failure"),
        ("started", 2, ""),
    ]
    assert [(k, r, d) for k, r, d, _ in history(world, lost)] == [
        ("submitted", 1, ""),
        ("started", 1, ""),
        ("lost", 1, "process vanished"),
        ("ended", 1, "lost: process vanished; requeued 0 times already"),
    ]
    refused_history = history(world, refused)
    assert [k for k, *_ in refused_history] == ["submitted", "started", "launch_failed", "ended"]
    assert refused_history[-1][2].startswith("failed: launch failed 1 times")
    assert [(k, d) for k, _, d, _ in history(world, cancelled)] == [
        ("submitted", ""),
        ("started", ""),
        ("cancel_requested", "while running"),
        ("ended", "cancelled: cancelled"),
    ]
    assert [(k, d) for k, _, d, _ in history(world, waiting)] == [
        ("submitted", ""),
        ("cancel_requested", "while pending"),
        ("ended", "cancelled: cancelled while pending"),
    ]
    assert set(ended_events(world).values()) == {1}  # one end per ended job, whatever led there
