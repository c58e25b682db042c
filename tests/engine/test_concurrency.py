"""The API and the scheduler writing the same job rows, and two schedulers on one database, interleaved
deterministically: the API's write happens inside the scheduler's step (between its snapshot and its
commit, or while a launch is on its way), in another session and, where the scheduler could be holding
a lock, on another thread that must finish within a deadline. A cancel always wins and is never
forgotten; a write the scheduler did not see is never overwritten; a scheduler that lost its lease
commits and launches nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from unittest import mock

from sqlalchemy import func, select, update

from gpucommons.clusterfile import load_cluster
from gpucommons.engine import cycle as engine_cycle
from gpucommons.engine.ports import BackendEvent, LaunchSpec
from gpucommons.policy.cycle import schedule as real_schedule
from gpucommons.policy.decisions import CycleResult, Preemption
from gpucommons.policy.protocols import PolicyConfig
from gpucommons.policy.snapshot import Snapshot
from gpucommons.store.base import to_s
from gpucommons.store.jobs import AllocationRow, get_job, request_cancel
from gpucommons.store.lease import SchedulerLeaseRow, acquire_lease, db_now, read_db_now
from gpucommons.store.state_store import LiveStore
from tests.components import wait_until
from tests.engine.conftest import World
from tests.engine.test_backend_events import NEVER_RUN, ScriptedBackend, engine_with, row

DEADLINE_S = 10.0


def api_cancel(world: World, job_id: int) -> None:
    """What ``POST /jobs/{id}/cancel`` does: its own session, read, request, commit."""
    with world.sessions() as s:
        request_cancel(s, get_job(s, job_id), datetime.now(UTC))
        s.commit()


def on_thread(action: Callable[[], None]) -> None:
    """Run ``action`` on another thread and wait for it: it must not be blocked by the caller's locks."""
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # reported on the caller's thread
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    assert done.wait(DEADLINE_S), "the API write was blocked by the scheduler"
    if errors:
        raise errors[0]


@contextmanager
def between_snapshot_and_commit(action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` once, after the policy decided on its snapshot and before the store records."""
    calls: list[int] = []

    def decide(snapshot: Snapshot, config: PolicyConfig, now: float) -> CycleResult:
        result = real_schedule(snapshot, config, now)
        if not calls:
            calls.append(1)
            on_thread(action)
        return result

    with mock.patch.object(engine_cycle, "schedule", decide):
        yield


def allocations(world: World, job_id: int) -> int:
    with world.sessions() as s:
        query = select(func.count()).select_from(AllocationRow).where(AllocationRow.job_id == job_id)
        return int(s.scalar(query) or 0)


def test_a_cancel_committed_between_snapshot_and_commit_wins(world: World) -> None:
    backend = ScriptedBackend()
    engine = engine_with(world, backend)
    doomed, other = world.submit(["true"], gpus=2), world.submit(["true"], gpus=2)
    with between_snapshot_and_commit(lambda: api_cancel(world, doomed)):
        report = engine.step()
    cancelled = row(world, doomed)
    assert (cancelled.state, cancelled.reason) == ("cancelled", "cancelled while pending")
    assert allocations(world, doomed) == 0 and cancelled.started_at is None
    assert [s.job_id for s in backend.launched] == [other]  # the other decision still went through
    assert (report.started, report.skipped) == (1, 1)


def test_a_cancel_sent_while_the_launch_is_on_its_way_stops_the_job_at_once(world: World) -> None:
    job_id = world.submit(NEVER_RUN, gpus=1)
    backend = ScriptedBackend(on_launch=lambda spec: on_thread(lambda: api_cancel(world, spec.job_id)))
    engine = engine_with(world, backend)
    engine.step()
    assert backend.cancelled == [(job_id, "ref-1")]  # in the same step, as soon as the ref is known
    backend.events = [BackendEvent(job_id, "cancelled", time.time(), "ref-1")]
    engine.step()
    assert row(world, job_id).state == "cancelled" and backend.cancelled == [(job_id, "ref-1")]


def test_an_api_cancel_never_overwrites_a_start_it_did_not_see(world: World) -> None:
    backend = ScriptedBackend()
    engine = engine_with(world, backend)
    job_id = world.submit(NEVER_RUN, gpus=1)
    with world.sessions() as api:
        seen = get_job(api, job_id)  # the API reads the job while it is pending...
        assert seen.state == "pending"
        engine.step()  # ...the scheduler starts it...
        stored = request_cancel(api, seen, datetime.now(UTC))  # ...then the API writes
        api.commit()
    assert (stored.state, stored.cancel_requested_at is not None) == ("running", True)
    assert allocations(world, job_id) == 1  # still held: the process runs until the backend stops it
    engine.step()
    assert backend.cancelled == [(job_id, "ref-1")]


def test_a_cancel_outlives_a_requeue_that_came_before_it_was_sent(world: World) -> None:
    backend = ScriptedBackend()
    engine = engine_with(world, backend)
    job_id = world.submit(NEVER_RUN, gpus=1)
    engine.step()
    api_cancel(world, job_id)  # asked to stop; before the scheduler forwards it, the backend requeues it
    backend.events = [BackendEvent(job_id, "requeued", time.time(), "ref-1", detail="node down")]
    engine.step()
    engine.step()
    ended = row(world, job_id)
    assert (ended.state, ended.restarts, len(backend.launched)) == ("cancelled", 0, 1)
    assert ended.cancel_requested_at is not None and allocations(world, job_id) == 0


def test_a_cancel_outlives_a_preemption_that_came_before_it_was_sent(world: World) -> None:
    backend = ScriptedBackend()
    engine = engine_with(world, backend)
    victim = world.submit(NEVER_RUN, gpus=1)
    engine.step()
    api_cancel(world, victim)
    cluster = load_cluster("demo")
    with world.sessions() as s:
        store = LiveStore(s, cluster)
        now = to_s(datetime.now(UTC))
        store.snapshot(now)
        store.record(CycleResult((), (Preemption(victim, 99, "reclaimed"),), ()), now)
        s.commit()
    ended = row(world, victim)
    assert (ended.state, ended.restarts, ended.reason_code) == ("cancelled", 0, "cancelled")
    engine.step()
    assert len(backend.launched) == 1  # never started again


def test_a_scheduler_that_lost_its_lease_mid_cycle_commits_and_launches_nothing(world: World) -> None:
    backend = ScriptedBackend()
    engine = engine_with(world, backend)
    job_id = world.submit(["true"], gpus=1)

    def take_over() -> None:  # the lease expires (a long pause) and another scheduler takes it
        with world.sessions() as s:
            s.execute(update(SchedulerLeaseRow).values(expires_at=datetime(2000, 1, 1, tzinfo=UTC)))
            s.commit()
            assert acquire_lease(s, "elsewhere:1:b", 60.0) is not None
            s.commit()

    with between_snapshot_and_commit(take_over):
        report = engine.step()
    assert report.lost_lease and backend.launched == []
    assert (row(world, job_id).state, allocations(world, job_id)) == ("pending", 0)
    assert not engine.step().held_lease  # and it stays off while the other holds the lease


def test_lease_expiry_is_judged_by_the_database_clock(world: World) -> None:
    holder = engine_with(world, ScriptedBackend())
    assert holder.step().held_lease
    ahead = engine_with(world, ScriptedBackend(), clock=lambda: time.time() + 3600)  # a fast host clock
    assert not ahead.step().held_lease


def test_the_lease_is_renewed_to_outlast_a_long_launch(world: World) -> None:
    """The lease lives 0.5 s, a launch may take 30 s: another scheduler must not get in meanwhile."""
    taken: list[bool] = []

    def slow_launch(spec: LaunchSpec) -> None:
        with world.sessions() as s:
            start = read_db_now(s)
            wait_until(  # past the 0.5 s lease
                lambda: (read_db_now(s) - start).total_seconds() >= 1.0,
                DEADLINE_S,
                "the database clock never passed the 0.5 s lease",
            )
            taken.append(acquire_lease(s, "elsewhere:1:c", 60.0) is not None)
            s.commit()

    backend = ScriptedBackend(max_call_s=30.0, on_launch=slow_launch)
    options = world.options(ttl_s=0.5)
    engine = engine_with(world, backend, options)
    world.submit(["true"], gpus=1)
    assert engine.step().started == 1
    assert taken == [False]
    with world.sessions() as s:
        lease = s.get(SchedulerLeaseRow, 1)
        assert lease is not None and lease.holder == options.holder
        assert s.scalar(select(SchedulerLeaseRow.expires_at > db_now())) is True
