"""The live engine with real local processes, on SQLite and PostgreSQL: runs, charges, restart, lease."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select, update

from gpucommons.backends.local import LocalBackend
from gpucommons.engine.live import LiveEngine
from gpucommons.engine.ports import BackendEvent, LaunchRetry
from gpucommons.store.awards import AwardRow
from gpucommons.store.jobs import AllocationRow, JobRow
from gpucommons.store.lease import SchedulerLeaseRow
from gpucommons.store.usage import UsageRow
from tests.components import wait_until
from tests.engine.conftest import World
from tests.job_release import Release, releases

__all__ = ["releases"]

pytestmark = pytest.mark.timeout(90)


def job(world: World, job_id: int) -> JobRow:
    with world.sessions() as s:
        row = s.get(JobRow, job_id)
        assert row is not None
        return row


def step_until(engine: LiveEngine, done: Callable[[], bool], wait_s: float = 30.0) -> None:
    def stepped() -> bool:
        engine.step()
        return done()

    wait_until(stepped, wait_s, "condition not reached", poll_s=0.1)


def test_job_runs_on_its_gpus_and_is_charged(world: World) -> None:
    job_id = world.submit(["sh", "-c", "echo $CUDA_VISIBLE_DEVICES"], gpus=2)
    engine = world.engine()
    step_until(engine, lambda: job(world, job_id).state == "finished")
    row = job(world, job_id)
    assert (row.exit_code, row.award_id, row.backend) == (0, world.award_id, "local")
    gpus = (world.root / "jobs" / str(job_id) / "stdout.log").read_text().strip().split(",")
    assert len(set(gpus)) == 2
    with world.sessions() as s:
        usage = s.scalars(select(UsageRow)).one()
        award = s.get(AwardRow, world.award_id)
        assert award is not None
        assert usage.gpus == 2 and usage.model in ("H100", "A100")
        assert usage.gpu_hours == pytest.approx(award.gpu_hours_used)
        assert isinstance(usage.cost_krw, int)  # whole won at list price: the program states no discounts
        assert abs(usage.cost_krw - usage.gpu_hours * 3600.0) <= 0.5
        assert s.scalar(select(func.count()).select_from(AllocationRow)) == 0


def test_a_runs_end_is_acknowledged_to_the_backend_only_once_committed(world: World) -> None:
    """The local backend keeps a run's end until the engine has committed it: seen only in memory by a
    server that then died, it would be reported again by the next one, and a new backend over the same
    state finds nothing left to report once it is in the database."""
    job_id = world.submit(["true"])
    engine = world.engine()
    acknowledged: list[tuple[str, str]] = []
    backend = engine.backend
    assert isinstance(backend, LocalBackend)
    forward = backend.acknowledge

    def acknowledge(events: Sequence[BackendEvent]) -> None:
        for event in events:
            acknowledged.append((event.kind, job(world, event.job_id).state))  # what the database holds
        forward(events)

    backend.acknowledge = acknowledge  # type: ignore[method-assign]
    step_until(engine, lambda: job(world, job_id).state == "finished")
    assert ("finished", "finished") in acknowledged
    assert LocalBackend(world.root / "backend", grace_s=1.0).adopt([]) == []


def test_job_without_award_waits_with_reason(world: World) -> None:
    with world.sessions() as s:
        award = s.get(AwardRow, world.award_id)
        assert award is not None
        award.status = "expired"
        s.commit()
    job_id = world.submit(["true"])
    world.engine().step()
    row = job(world, job_id)
    assert (row.state, row.reason_code) == ("pending", "no-award")


def test_spent_budget_keeps_jobs_pending(world: World) -> None:
    with world.sessions() as s:
        award = s.get(AwardRow, world.award_id)
        assert award is not None
        award.gpu_hours_used = 100.0
        s.commit()
    job_id = world.submit(["true"])
    world.engine().step()
    assert (job(world, job_id).state, job(world, job_id).reason_code) == ("pending", "budget")


def test_cancel_request_stops_a_running_job(world: World, releases: Callable[[str], Release]) -> None:
    job_id = world.submit(releases("never").command)  # runs until cancelled
    engine = world.engine()
    step_until(
        engine, lambda: job(world, job_id).state == "running" and ":" in job(world, job_id).backend_ref
    )
    with world.sessions() as s:
        row = s.get(JobRow, job_id)
        assert row is not None
        row.cancel_requested_at = row.started_at
        s.commit()
    step_until(engine, lambda: job(world, job_id).state == "cancelled")


def expire_lease(world: World) -> None:
    """As if the lease's time ran out: its holder stopped renewing it (a dead or cut-off host)."""
    with world.sessions() as s:
        s.execute(update(SchedulerLeaseRow).values(expires_at=datetime(2000, 1, 1, tzinfo=UTC)))
        s.commit()


def test_restart_adopts_running_jobs_and_starts_nothing_twice(
    world: World, releases: Callable[[str], Release]
) -> None:
    release = releases("adopted")
    ids = [world.submit(["sh", "-c", f"echo x; {release.shell}"], gpus=4) for _ in range(3)]
    first = world.engine(ttl_s=60)
    step_until(first, lambda: all(job(world, i).state == "running" for i in ids))
    # The first scheduler "dies" holding the lease; a later one takes over once it expires.
    second = world.engine(ttl_s=60)
    assert not second.step().held_lease
    expire_lease(world)
    assert second.step().held_lease  # adopts the three, still running
    assert all(job(world, i).state == "running" for i in ids)
    release.release()
    step_until(second, lambda: all(job(world, i).state == "finished" for i in ids))
    for i in ids:
        assert (world.root / "jobs" / str(i) / "stdout.log").read_text() == "x\n"  # appended per run
        assert job(world, i).restarts == 0


def test_only_the_lease_holder_schedules(world: World) -> None:
    job_id = world.submit(["true"])
    holder = world.engine(ttl_s=60, holder="elsewhere:1:a")
    assert holder.step().held_lease
    other = world.engine(ttl_s=60)
    report = other.step()
    assert not report.held_lease and report.started == 0
    step_until(holder, lambda: job(world, job_id).state == "finished")


def test_never_launched_job_is_requeued_and_runs_again(world: World) -> None:
    job_id = world.submit(["sh", "-c", "echo x"])
    with world.sessions() as s:  # as if a scheduler recorded a start and died before launching
        row = s.get(JobRow, job_id)
        assert row is not None
        row.state, row.backend_ref, row.started_at = "running", "pending:never", row.submitted_at
        s.add(AllocationRow(job_id=job_id, node_index=0, node_name="h100-1", gpu_index=0))
        s.commit()
    engine = world.engine(launch_retry=LaunchRetry(backoff_s=0.2))
    step_until(engine, lambda: job(world, job_id).state == "finished")
    # a launch that never happened is a failed launch (retried after a backoff), not a lost run
    assert (job(world, job_id).restarts, job(world, job_id).launch_attempts) == (0, 0)
    assert (world.root / "jobs" / str(job_id) / "stdout.log").read_text() == "x\n"
    with world.sessions() as s:
        assert s.scalars(select(UsageRow)).one().job_id == job_id  # the run that happened, charged once
