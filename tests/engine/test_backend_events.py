"""How the live engine treats what a remote backend (Slurm) reports, with a scripted backend: a real start
time moves the charged segment, a backend requeue sends the job back to gpucommons' queue and cancels the
backend's copy, unknown jobs are counted and left alone with the GPUs they hold kept out of scheduling,
unavailable nodes leave the snapshot, and a refused launch holds back only that job."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from sqlalchemy import select, update

from gpucommons.backends.slurm import SlurmBackend
from gpucommons.backends.slurm_submit import SlurmConfig
from gpucommons.clusterfile import load_cluster
from gpucommons.domain.accelerators import CATALOG
from gpucommons.engine.live import EngineOptions, LiveEngine, live_commons
from gpucommons.engine.ports import Backend, BackendEvent, LaunchSpec
from gpucommons.errors import GpucError
from gpucommons.metering import Billing, Rate, meter_segment
from gpucommons.policy.registry import build_policy
from gpucommons.store.awards import AwardRow
from gpucommons.store.base import to_dt, to_s
from gpucommons.store.jobs import JobRow
from gpucommons.store.lease import SchedulerLeaseRow
from gpucommons.store.scheduler_state import DatabaseSchedulerState
from gpucommons.store.usage import UsageRow, end_segment
from tests.backends.test_slurm_unit import ScriptedCli, squeue
from tests.engine.conftest import World

NEVER_RUN = ["./train.sh"]  # a command the scripted backend never runs: its job runs until an event ends it


@dataclass
class ScriptedBackend:
    """Launches nothing; returns queued events from ``poll`` and records what the engine asked.

    ``refuse`` (every launch) or ``refuse_jobs`` (those jobs) make sbatch-like refusals; ``on_launch``
    runs inside ``launch`` after the backend accepted the job and before it answers (it may block, or
    raise to make the answer fail). ``adopt`` resolves a ``pending:<launch id>`` reference to the launch
    it accepted under that id (a ``started`` event) or reports it never launched; ``held`` is what
    ``held_gpus`` reports (GPUs of jobs no gpucommons job owns)."""

    name: str = "scripted"
    stops_unknown: bool = False
    even_gangs: bool = False
    max_call_s: float = 0.0
    events: list[BackendEvent] = field(default_factory=list)
    launched: list[LaunchSpec] = field(default_factory=list)
    cancelled: list[tuple[int, str]] = field(default_factory=list)
    down: set[str] = field(default_factory=set)
    held: dict[str, int | None] = field(default_factory=dict)
    refuse: bool = False
    refuse_jobs: set[int] = field(default_factory=set)
    explode_jobs: set[int] = field(default_factory=set)  # launch raises an unexpected error
    on_launch: Callable[[LaunchSpec], None] | None = None
    accepted: dict[str, str] = field(default_factory=dict)  # launch id -> ref

    def launch(self, spec: LaunchSpec) -> str:
        if self.refuse or spec.job_id in self.refuse_jobs:
            raise GpucError("sbatch failed (exit 1): Requested node configuration is not available")
        if spec.job_id in self.explode_jobs:
            raise RuntimeError("backend crashed")
        self.launched.append(spec)
        ref = f"ref-{len(self.launched)}"
        self.accepted[spec.env["GPUC_LAUNCH_ID"]] = ref
        if self.on_launch is not None:
            self.on_launch(spec)
        return ref

    def cancel(self, job_id: int, backend_ref: str) -> None:
        self.cancelled.append((job_id, backend_ref))

    def poll(self) -> list[BackendEvent]:
        events, self.events = self.events, []
        return events

    def adopt(self, running: Sequence[tuple[int, str]]) -> list[BackendEvent]:
        events = []
        for job_id, ref in running:
            if ref.startswith("pending:"):
                real = self.accepted.get(ref.removeprefix("pending:"))
                kind, detail = ("started", "") if real else ("lost", "never launched")
                events.append(BackendEvent(job_id, kind, 0.0, real or ref, detail=detail))
        return events

    def unavailable_nodes(self) -> set[str]:
        return set(self.down)

    def held_gpus(self) -> dict[str, int | None]:
        return dict(self.held)


def engine_with(
    world: World,
    backend: Backend,
    options: EngineOptions | None = None,
    clock: Callable[[], float] | None = None,
) -> LiveEngine:
    cluster = load_cluster("demo")
    return LiveEngine(
        DatabaseSchedulerState(world.sessions, cluster),
        backend,
        cluster,
        build_policy("quota", commons=live_commons(backend)),
        options or EngineOptions(logs_dir=world.root / "jobs"),
        **({"clock": clock} if clock is not None else {}),
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


def test_after_a_restart_a_slurm_job_is_charged_from_slurms_start_time(world: World) -> None:
    """The service died while Slurm still had the job in its queue; Slurm started it 555 s after the
    decision. The job is charged GPUs x (EndTime - StartTime), not from the decision."""
    idle = {"sinfo": [""], "scontrol": ["AccountingStorageType = accounting_storage/none\n"]}
    cli = ScriptedCli({"sbatch": ["41\n"], "squeue": [squeue()], **idle})
    first = engine_with(world, SlurmBackend(SlurmConfig(), cli))
    job_id = world.submit(["true"], gpus=2)
    first.step()
    decided_s = to_s(row(world, job_id).started_at)  # type: ignore[arg-type]
    assert row(world, job_id).backend_ref == "41"
    with world.sessions() as s:  # the first server is gone; its lease runs out
        s.execute(update(SchedulerLeaseRow).values(expires_at=datetime(2000, 1, 1, tzinfo=UTC)))
        s.commit()
    queued = {"job_id": 41, "name": f"gpuc-{job_id}", "job_state": "PENDING"}
    cli = ScriptedCli({"squeue": [squeue(queued)], **idle})
    second = engine_with(world, SlurmBackend(SlurmConfig(), cli))
    assert second.step().held_lease
    started = {"start_time": int(decided_s) + 555, "nodes": "h100-1"}
    cli.answers["squeue"] = [squeue(queued | started | {"job_state": "RUNNING"})]
    second.step()
    ended = {"job_state": "COMPLETED", "end_time": int(decided_s) + 615}
    cli.answers["squeue"] = [squeue(queued | started | ended)]
    second.step()
    assert row(world, job_id).state == "finished"
    with world.sessions() as s:
        assert s.scalars(select(UsageRow)).one().gpu_hours == pytest.approx(2 * 60 / 3600)


def test_backend_requeue_returns_the_job_to_our_queue_and_cancels_the_backend_copy(world: World) -> None:
    backend = ScriptedBackend()
    engine = engine_with(world, backend)
    job_id = world.submit(NEVER_RUN, gpus=8)
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


def test_unknown_jobs_gpus_are_kept_out_of_scheduling(world: World) -> None:
    """A backend job no gpucommons job owns holds 6 GPUs of h100-1 and all of h100-2: an 8-GPU job
    cannot start where the backend would keep it waiting, a 2-GPU job fits beside the stranger."""
    backend = ScriptedBackend(held={"h100-1": 6, "h100-2": None})
    engine = engine_with(world, backend)
    eight, two = world.submit(["true"], gpus=8), world.submit(["true"], gpus=2)
    engine.step()
    assert [s.job_id for s in backend.launched] == [two]
    assert backend.launched[0].node_names == ("h100-1",)
    assert (row(world, eight).state, row(world, eight).reason_code) == ("pending", "resources")
    backend.held = {}  # the stranger ended
    engine.step()
    assert row(world, eight).state == "running"


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


@pytest.mark.parametrize("closed_after_s", [60, 0], ids=["closed-after-60s", "closed-at-its-start"])
def test_a_preempted_run_is_charged_until_its_process_really_ended(world: World, closed_after_s: int) -> None:
    """The scheduler closes a preempted job's segment when it decides; the process holds its GPUs until
    it exits (the next job on them starts only then), so its late end extends the segment, metered
    at the site it ran at (also when the decision came at the instant it started)."""
    backend = ScriptedBackend()
    engine = engine_with(world, backend)
    job_id = world.submit(NEVER_RUN, gpus=2)
    engine.step()
    started_s = to_s(row(world, job_id).started_at)  # type: ignore[arg-type]
    with world.sessions() as s:  # what recording a preemption does (LiveStore.record)
        job = s.get(JobRow, job_id)
        assert job is not None and job.backend_ref == "ref-1"
        end_segment(s, load_cluster("demo"), job, to_dt(started_s + closed_after_s))
        job.state, job.backend_ref, job.started_at = "pending", "", None
        s.commit()
    backend.events = [BackendEvent(job_id, "cancelled", started_s + 90, "ref-1")]
    engine.step()
    with world.sessions() as s:
        usage = s.scalars(select(UsageRow).where(UsageRow.job_id == job_id)).one()
        award = s.get(AwardRow, world.award_id)
        job = s.get(JobRow, job_id)
        assert award is not None and job is not None
        assert (to_s(usage.ended_at), usage.backend_ref) == (started_s + 90, "ref-1")
        assert usage.gpu_hours == pytest.approx(2 * 90 / 3600)
        assert usage.cost_krw == round(2 * 90 / 3600 * 3600)  # the world's price: 3,600 won per GPU-hour
        assert award.gpu_hours_used == pytest.approx(usage.gpu_hours)
        assert job.attained_gpu_s == pytest.approx(2 * 90)
        cluster = load_cluster("demo")
        assert usage.site is not None
        metered = meter_segment(
            CATALOG[usage.model],
            2,
            timedelta(seconds=90),
            cluster.site_by_name[usage.site],
            Billing(Rate(Fraction(0))),
        )
        assert (usage.energy_kwh, usage.co2_kg, usage.flops) == pytest.approx(
            (metered.energy_kwh, metered.co2_kg, metered.flops)
        )
        assert usage.energy_kwh > 0
    backend.events = [BackendEvent(job_id, "cancelled", started_s + 80, "ref-1")]  # nothing to extend
    engine.step()
    with world.sessions() as s:
        assert to_s(s.scalars(select(UsageRow)).one().ended_at) == started_s + 90
