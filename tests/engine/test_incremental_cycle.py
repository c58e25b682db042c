"""The live engine's memory between cycles (design note 0013), on SQLite and PostgreSQL: what the API
writes between two cycles is seen by the next one, a write committed by a transaction that was open
while the engine read is seen by the read after, a cycle with nothing changed is skipped and decides
nothing new, and after a run of cycles and API writes the memory's snapshot is exactly the one a full
read of the database gives."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from unittest import mock

import pytest
from sqlalchemy import select

from gpucommons.clusterfile import load_cluster
from gpucommons.engine import cycle as engine_cycle
from gpucommons.engine.ports import BackendEvent
from gpucommons.policy.cycle import schedule as real_schedule
from gpucommons.policy.decisions import CycleResult
from gpucommons.policy.protocols import PolicyConfig
from gpucommons.policy.snapshot import Snapshot
from gpucommons.store import state_store
from gpucommons.store.base import to_s
from gpucommons.store.job_view import JobView
from gpucommons.store.jobs import JobRequest, JobRow, get_job, request_cancel, submit_job
from gpucommons.store.scheduler_state import DatabaseSchedulerState
from gpucommons.store.state_store import LiveStore
from tests.engine.conftest import World
from tests.engine.test_backend_events import ScriptedBackend, engine_with, row

pytestmark = pytest.mark.timeout(60)


def api_cancel(world: World, job_id: int) -> None:
    with world.sessions() as s:
        request_cancel(s, get_job(s, job_id), datetime.now(UTC))
        s.commit()


def launched(backend: ScriptedBackend) -> list[int]:
    return [spec.job_id for spec in backend.launched]


def test_a_write_committed_after_the_view_read_is_read_the_next_time(world: World) -> None:
    """The API's transaction writes before the view reads and commits after: on SQLite its stamp is
    above the mark, on PostgreSQL its transaction id is at least the oldest one open at the read."""
    cluster = load_cluster("demo")
    view = JobView(cluster)
    tenants = {world.project_id: "acme"}
    with world.sessions() as api, world.sessions() as scheduler:
        job, _ = submit_job(
            api,
            cluster,
            world.project_id,
            world.user_id,
            JobRequest(gpus=1, command=["true"]),
            datetime.now(UTC),
        )
        api.flush()  # written, not committed
        assert view.refresh(scheduler, tenants, time.time()) is None  # the first read: everything
        scheduler.rollback()
        assert job.id not in view.jobs
        api.commit()
        assert view.refresh(scheduler, tenants, time.time()) == {job.id}
        scheduler.rollback()
        assert [p.job.id for p in view.queue.items] == [job.id]


def count_cycles() -> tuple[list[CycleResult], mock._patch[object]]:
    results: list[CycleResult] = []

    def decide(snapshot: Snapshot, config: PolicyConfig, now: float) -> CycleResult:
        results.append(real_schedule(snapshot, config, now))
        return results[-1]

    return results, mock.patch.object(engine_cycle, "schedule", decide)


def test_a_cycle_with_nothing_changed_is_skipped_and_decides_nothing_new(world: World) -> None:
    backend = ScriptedBackend()
    engine = engine_with(world, backend)
    big = world.submit(["true"], gpus=16)  # both H100 nodes
    waiting = world.submit(["true"], gpus=8)
    decided, counting = count_cycles()
    with counting:
        engine.step()  # starts the big job
        engine.step()  # its launch changed it: decided again, the other job still waits
        before = row(world, waiting)
        report = engine.step()
        assert report.cycle_skipped and len(decided) == 2
        after = row(world, waiting)
        assert (after.state, after.version, after.reason, after.change_stamp) == (
            "pending",
            before.version,
            before.reason,
            before.change_stamp,
        )
        backend.events = [BackendEvent(big, "finished", time.time(), "ref-1", 0)]
        report = engine.step()
    assert not report.cycle_skipped and len(decided) == 3
    assert launched(backend) == [big, waiting]


def test_api_writes_between_cycles_are_seen_and_the_memory_is_what_a_full_read_gives(world: World) -> None:
    """Starts, an end, a cancel, submissions and a launch backoff over a few cycles: the next cycle acts
    on each, and the memory's snapshot is, job for job and GPU for GPU, that of a store that reads
    everything. (A reason two jobs share is written as one a long queue shares is: by ``IN``.)"""
    backend = ScriptedBackend()
    engine = engine_with(world, backend)
    ids = [world.submit(["true"], gpus=g) for g in (8, 4, 2, 2, 1, 1)]
    with mock.patch.object(state_store, "REASON_GROUP_MIN", 2):
        engine.step()
        assert launched(backend) == ids[:4]  # the award pays for H100s only: the 16 are taken
        backend.events = [BackendEvent(ids[0], "finished", time.time(), "ref-1", 0)]
        api_cancel(world, ids[4])  # pending: cancelled at once, never started
        more = [world.submit(["true"], gpus=g) for g in (4, 8, 1)]
        backend.refuse_jobs = {more[2]}  # refused: back in the queue, held until its backoff passes
        engine.step()
        engine.step()
    assert ids[4] not in launched(backend) and row(world, ids[4]).state == "cancelled"
    assert {ids[5], more[0]} <= set(launched(backend))
    assert isinstance(engine.state, DatabaseSchedulerState) and engine.state.memory is not None
    cluster = load_cluster("demo")
    now = time.time()
    with world.sessions() as s:
        full = LiveStore(s, cluster).snapshot(now)
    with world.sessions() as s:
        kept = LiveStore(s, cluster, memory=engine.state.memory).snapshot(now)
    assert [p for p in kept.pending] == [p for p in full.pending]
    assert dict(kept.running) == dict(full.running)
    nodes = range(len(cluster.nodes))
    assert [kept.capacity.free_indices(n) for n in nodes] == [full.capacity.free_indices(n) for n in nodes]
    assert kept.capacity.free_total == full.capacity.free_total
    assert dict(kept.tenant_running_gpus) == dict(full.tenant_running_gpus)
    assert kept.tenant_usage_gpu_s.keys() == full.tenant_usage_gpu_s.keys()
    for tenant, used in full.tenant_usage_gpu_s.items():  # sums of terms near 1e7 GPU-s, rounded
        assert kept.tenant_usage_gpu_s[tenant] == pytest.approx(used, rel=1e-9, abs=1e-6)
    assert kept.site_draw is not None and full.site_draw is not None
    assert kept.site_draw.site_w == pytest.approx(full.site_draw.site_w)
    with world.sessions() as s:
        stored = {
            i: (code, reason)
            for i, code, reason in s.execute(select(JobRow.id, JobRow.reason_code, JobRow.reason))
        }
    memory = engine.state.memory.jobs
    for p in kept.pending:
        known = memory.stored_reason(p.job.id)
        assert known is not None and known[:2] == stored[p.job.id]
    refused = row(world, more[2])  # waiting out its backoff: in neither snapshot
    assert (refused.state, refused.reason_code) == ("pending", "launch-retry")
    assert to_s(refused.retry_at) > now and more[2] not in {p.job.id for p in kept.pending}  # type: ignore[arg-type]
