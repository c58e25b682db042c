"""The apply step in the Kueue manner, with a scripted backend on a simulated clock: a launch that fails
goes back to the queue with a capped exponential backoff that ``gpuc why`` explains, a job that keeps
failing fails with the reason instead of wedging the cycle, one bad launch never stops the others, an
uncertain launch is resolved by looking it up instead of being failed or run twice, and ``pending:``
references are reconciled at every step, not only after a restart."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from gpucommons.clusterfile import load_cluster
from gpucommons.engine.live import EngineOptions
from gpucommons.engine.ports import (
    BackendEvent,
    LaunchRetry,
    LaunchSpec,
    LaunchUncertainError,
    NodeUnavailableError,
    RecordedStart,
)
from gpucommons.store import nodes
from gpucommons.store.base import to_dt
from gpucommons.store.jobs import AllocationRow, JobRow
from gpucommons.store.scheduler_state import DatabaseTransaction
from gpucommons.store.usage import UsageRow
from gpucommons.store.why import why
from tests.engine.conftest import World
from tests.engine.test_backend_events import NEVER_RUN, ScriptedBackend, engine_with, row


@dataclass
class Clock:
    # Now, when the test starts: the world's award runs from a minute before it was made, for 30 days.
    now_s: float = field(default_factory=lambda: float(int(time.time())))

    def __call__(self) -> float:
        return self.now_s


def allocations(world: World, job_id: int) -> int:
    with world.sessions() as s:
        query = select(func.count()).select_from(AllocationRow).where(AllocationRow.job_id == job_id)
        return int(s.scalar(query) or 0)


def test_a_refused_launch_backs_off_then_fails_and_never_holds_back_the_others(world: World) -> None:
    clock = Clock()
    t0 = clock.now_s
    backend = ScriptedBackend()
    retry = LaunchRetry(max_attempts=3, backoff_s=10.0, backoff_max_s=15.0)
    engine = engine_with(
        world, backend, EngineOptions(logs_dir=world.root / "jobs", launch_retry=retry), clock
    )
    bad = world.submit(["true"], gpus=1)
    good = world.submit(["true"], gpus=1)
    backend.refuse_jobs = {bad}

    report = engine.step()
    assert (report.started, report.launch_failures) == (1, 1)
    assert row(world, good).state == "running" and row(world, good).backend_ref == "ref-1"
    waiting = row(world, bad)
    assert (waiting.state, waiting.reason_code, waiting.launch_attempts) == ("pending", "launch-retry", 1)
    assert waiting.retry_at == to_dt(t0 + 10.0) and allocations(world, bad) == 0
    assert "attempt 1 of 3" in waiting.reason and "Requested node configuration" in waiting.reason
    with world.sessions() as s:
        answer = why(s, load_cluster("demo"), waiting, to_dt(t0))
    assert (answer.code, answer.estimated_start_at) == ("launch-retry", to_dt(t0 + 10.0))
    assert "tried again" in answer.unblock

    clock.now_s = t0 + 9.0  # still backing off: not tried, and its reason is kept
    assert engine.step().launch_failures == 0
    assert (row(world, bad).launch_attempts, row(world, bad).reason_code) == (1, "launch-retry")
    clock.now_s = t0 + 10.0
    engine.step()
    assert row(world, bad).retry_at == to_dt(t0 + 10.0 + 15.0)  # 10 s doubled, capped at 15 s
    clock.now_s = t0 + 25.0
    engine.step()
    failed = row(world, bad)
    assert (failed.state, failed.reason_code, failed.launch_attempts) == ("failed", "launch-failed", 3)
    assert "launch failed 3 times" in failed.reason and allocations(world, bad) == 0
    with world.sessions() as s:  # a job that never ran is charged nothing
        assert s.scalars(select(UsageRow).where(UsageRow.job_id == bad)).all() == []


def test_a_launch_that_crashes_midway_leaves_the_rest_of_the_batch_launched(world: World) -> None:
    backend = ScriptedBackend()
    engine = engine_with(world, backend)
    first, second, third = (world.submit(["true"], gpus=1) for _ in range(3))
    backend.explode_jobs = {first}
    report = engine.step()
    assert (report.started, report.launch_failures) == (2, 1)
    assert [s.job_id for s in backend.launched] == [second, third]
    assert {row(world, j).backend_ref for j in (second, third)} == {"ref-1", "ref-2"}
    assert (row(world, first).state, row(world, first).reason_code) == ("pending", "launch-retry")
    assert "backend crashed" in row(world, first).reason


def test_an_uncertain_launch_is_resolved_by_lookup_and_never_launched_twice(world: World) -> None:
    def timed_out(spec: LaunchSpec) -> None:
        raise LaunchUncertainError("sbatch: no answer within 30 s; Slurm lists no such job yet")

    backend = ScriptedBackend(on_launch=timed_out)  # accepted by the backend, but the answer was lost
    engine = engine_with(world, backend)
    job_id = world.submit(["true"], gpus=2)
    engine.step()
    uncertain = row(world, job_id)
    assert uncertain.state == "running" and uncertain.backend_ref.startswith("pending:")
    assert allocations(world, job_id) == 2  # its GPUs stay taken while the launch is unresolved
    backend.on_launch = None
    engine.step()
    assert row(world, job_id).backend_ref == "ref-1" and len(backend.launched) == 1


def test_pending_references_are_reconciled_at_every_step(world: World) -> None:
    backend = ScriptedBackend()
    engine = engine_with(world, backend)
    engine.step()  # the engine holds the lease and has adopted everything: no restart follows
    launched, never = world.submit(["true"], gpus=1), world.submit(["true"], gpus=1)
    with world.sessions() as s:  # decisions whose launches were not recorded (a failed commit)
        for job_id, node, launch_id in ((launched, "h100-1", "L1"), (never, "h100-2", "L2")):
            job = s.get(JobRow, job_id)
            assert job is not None
            job.state, job.backend_ref, job.started_at = "running", f"pending:{launch_id}", job.submitted_at
            job.award_id = world.award_id
            s.add(
                AllocationRow(
                    job_id=job_id, node_index=0 if node == "h100-1" else 1, node_name=node, gpu_index=7
                )
            )
        s.commit()
    backend.accepted["L1"] = "ref-9"  # the backend runs L1; L2 never reached it
    engine.step()
    assert (row(world, launched).state, row(world, launched).backend_ref) == ("running", "ref-9")
    requeued = row(world, never)
    assert (requeued.state, requeued.reason_code, requeued.launch_attempts) == ("pending", "launch-retry", 1)
    assert requeued.retry_at is not None and requeued.retry_at > requeued.submitted_at + timedelta(0)


def test_a_node_drained_before_the_launch_returns_the_job_to_the_queue_uncharged(world: World) -> None:
    backend = ScriptedBackend()
    engine = engine_with(world, backend)

    def drained(spec: LaunchSpec) -> None:
        raise NodeUnavailableError(f"node {spec.node_names[0]} is out of service")

    backend.on_launch = drained
    job_id = world.submit(["true"], gpus=1)
    report = engine.step()
    assert (report.started, report.launch_failures) == (0, 1)
    job = row(world, job_id)
    assert (job.state, job.reason_code, job.launch_attempts, job.backend_ref) == (
        "pending",
        "node-unavailable",
        0,
        "",
    )
    assert allocations(world, job_id) == 0
    with world.sessions() as s:
        assert s.scalars(select(UsageRow).where(UsageRow.job_id == job_id)).first() is None
    backend.on_launch = None
    assert engine.step().started == 1 and row(world, job_id).state == "running"


def _drain(world: World, *names: str) -> None:
    with world.sessions() as s:
        for name in names:
            nodes.drain_node(s, load_cluster("demo"), name, "maintenance", None, to_dt(time.time()))
        s.commit()


def test_an_operators_drain_keeps_new_jobs_off_a_node_and_lets_its_running_job_finish(world: World) -> None:
    backend = ScriptedBackend()
    engine = engine_with(world, backend)
    running = world.submit(NEVER_RUN, gpus=8)
    engine.step()
    (node,) = backend.launched[0].node_names
    _drain(world, node)
    others = [world.submit(["true"], gpus=8) for _ in range(2)]  # two 8-GPU nodes: one left free
    engine.step()
    assert row(world, running).state == "running"  # a drain stops nothing
    placed = [spec.node_names for spec in backend.launched[1:]]
    assert len(placed) == 1 and node not in placed[0]
    assert row(world, others[1]).state == "pending"
    backend.events = [BackendEvent(running, "finished", time.time(), "ref-1", 0)]
    engine.step()  # its node is free now, but drained
    assert row(world, others[1]).state == "pending"
    with world.sessions() as s:
        nodes.resume_node(s, load_cluster("demo"), node)
        s.commit()
    engine.step()
    assert row(world, others[1]).state == "running" and backend.launched[-1].node_names == (node,)


def test_a_node_drained_between_the_decision_and_the_launch_gets_no_launch(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = ScriptedBackend()
    engine = engine_with(world, backend)
    job_id = world.submit(["true"], gpus=8)
    recorded_start = DatabaseTransaction.recorded_start

    def drain_first(tx: DatabaseTransaction, job: int, intent: str) -> RecordedStart | None:
        with world.sessions() as s:  # an operator, in a transaction of its own, after the cycle committed
            held = s.scalars(select(AllocationRow.node_name).where(AllocationRow.job_id == job)).all()
        _drain(world, *set(held))
        return recorded_start(tx, job, intent)

    monkeypatch.setattr(DatabaseTransaction, "recorded_start", drain_first)
    report = engine.step()
    assert (report.started, report.launch_failures, backend.launched) == (0, 1, [])
    job = row(world, job_id)
    assert (job.state, job.reason_code, job.launch_attempts) == ("pending", "node-unavailable", 0)
    assert "drained" in job.reason and allocations(world, job_id) == 0
