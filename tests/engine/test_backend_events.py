"""How the live engine treats what a remote backend (Slurm) reports, with a scripted backend: a real start
time moves the charged segment, a backend requeue sends the job back to gpucommons' queue and cancels the
backend's copy, unknown jobs are counted and left alone, unavailable nodes leave the snapshot, and a
refused launch fails only that job."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from gpucommons.clusterfile import load_cluster
from gpucommons.engine.live import EngineOptions, LiveEngine, live_commons
from gpucommons.engine.ports import BackendEvent, LaunchSpec
from gpucommons.errors import GpucError
from gpucommons.policy.registry import build_policy
from gpucommons.store.jobs import JobRow, UsageRow
from gpucommons.store.live import to_s
from tests.engine.conftest import World


@dataclass
class ScriptedBackend:
    """Launches nothing; returns queued events from ``poll`` and records what the engine asked."""

    name: str = "scripted"
    stops_unknown: bool = False
    even_gangs: bool = False
    events: list[BackendEvent] = field(default_factory=list)
    launched: list[LaunchSpec] = field(default_factory=list)
    cancelled: list[tuple[int, str]] = field(default_factory=list)
    down: set[str] = field(default_factory=set)
    refuse: bool = False

    def launch(self, spec: LaunchSpec) -> str:
        if self.refuse:
            raise GpucError("sbatch failed (exit 1): Requested node configuration is not available")
        self.launched.append(spec)
        return f"ref-{len(self.launched)}"

    def cancel(self, job_id: int, backend_ref: str) -> None:
        self.cancelled.append((job_id, backend_ref))

    def poll(self) -> list[BackendEvent]:
        events, self.events = self.events, []
        return events

    def adopt(self, running: Sequence[tuple[int, str]]) -> list[BackendEvent]:
        return []

    def unavailable_nodes(self) -> set[str]:
        return set(self.down)


def engine_with(world: World, backend: ScriptedBackend) -> LiveEngine:
    options = EngineOptions(logs_dir=world.root / "jobs")
    return LiveEngine(
        world.sessions,
        backend,
        load_cluster("demo"),
        build_policy("quota", commons=live_commons(backend)),
        options,
    )


def row(world: World, job_id: int) -> JobRow:
    with world.sessions() as s:
        found = s.get(JobRow, job_id)
        assert found is not None
        return found


def test_started_event_moves_the_charged_start_to_the_backends(world: World) -> None:
    backend = ScriptedBackend()
    engine = engine_with(world, backend)
    job_id = world.submit(["true"], gpus=2)
    engine.step()
    decided_s = to_s(row(world, job_id).started_at)  # type: ignore[arg-type]
    backend.events = [
        BackendEvent(job_id, "started", decided_s + 5, "ref-1"),
        BackendEvent(job_id, "finished", decided_s + 65, "ref-1", 0),
    ]
    engine.step()
    with world.sessions() as s:
        assert s.scalars(select(UsageRow)).one().gpu_hours == 2 * 60 / 3600


def test_backend_requeue_returns_the_job_to_our_queue_and_cancels_the_backend_copy(world: World) -> None:
    backend = ScriptedBackend()
    engine = engine_with(world, backend)
    job_id = world.submit(["sleep", "60"], gpus=8)
    engine.step()
    first_node = backend.launched[0].node_names
    backend.down = set(first_node)
    backend.events = [BackendEvent(job_id, "requeued", 0.0, "ref-1", detail="node down")]
    engine.step()
    assert (job_id, "ref-1") in backend.cancelled
    again = row(world, job_id)
    assert (again.state, again.restarts, again.backend_ref) == ("running", 1, "ref-2")
    assert not set(backend.launched[1].node_names) & set(first_node)  # the down node is not used
    assert engine.event_counts["requeued"] == 1 and engine.unavailable_nodes == frozenset(first_node)


def test_unknown_jobs_are_counted_and_left_alone_unless_the_backend_owns_them(world: World) -> None:
    for stops in (False, True):
        backend = ScriptedBackend(stops_unknown=stops)
        engine = engine_with(world, backend)
        backend.events = [BackendEvent(0, "unknown", 0.0, "4242", detail="gpuc-99")]
        engine.step()
        assert engine.event_counts["unknown"] == 1
        assert backend.cancelled == ([(0, "4242")] if stops else [])
        engine.shutdown()  # the lease goes to the next engine


def test_a_refused_launch_fails_that_job_only(world: World) -> None:
    backend = ScriptedBackend(refuse=True)
    engine = engine_with(world, backend)
    job_id = world.submit(["true"], gpus=1)
    engine.step()
    failed = row(world, job_id)
    assert failed.state == "failed" and "Requested node configuration" in failed.reason


@pytest.mark.parametrize(("even", "want"), [(False, [4, 8]), (True, [6, 6])])
def test_a_backend_that_needs_even_gangs_gets_the_same_gpus_on_every_node(
    world: World, even: bool, want: list[int]
) -> None:
    """12 H100 GPUs on 8-GPU nodes: 6 + 6 for Slurm-like backends (best fit alone gives 8 + 4)."""
    backend = ScriptedBackend(even_gangs=even)
    engine = engine_with(world, backend)
    world.submit(["true"], gpus=12)
    engine.step()
    assert sorted(len(g) for _, g in backend.launched[0].placement.node_gpus) == want
