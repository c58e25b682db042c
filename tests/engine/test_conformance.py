"""One scenario — awards with budgets and models, a capped sovereign site, a sovereign project, even
gangs for a Slurm-like backend — replayed through the simulator's store and through ``LiveStore`` on a
real SQLite database with a simulated clock and a scripted backend: the decisions (every start with its
placement and award, every preemption, and the reasons left at the end) are identical."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy import select

import gpucommons.engine.cycle as engine_cycle
from gpucommons.clusterfile import parse_cluster
from gpucommons.domain.award import Award
from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.engine.live import EngineOptions, LiveEngine, live_commons
from gpucommons.engine.ports import BackendEvent, LaunchSpec
from gpucommons.policy.cycle import schedule as real_schedule
from gpucommons.policy.decisions import CycleResult
from gpucommons.policy.protocols import PolicyConfig
from gpucommons.policy.registry import build_policy
from gpucommons.policy.snapshot import Snapshot
from gpucommons.sim.runner import SimOptions, simulate
from gpucommons.store import awards as award_repo
from gpucommons.store.awards import AwardRow
from gpucommons.store.base import make_engine, session_factory, upgrade
from gpucommons.store.calls import create_program
from gpucommons.store.jobs import JobRequest, JobRow, submit_job
from gpucommons.store.scheduler_state import DatabaseSchedulerState
from gpucommons.store.state_store import award_of
from gpucommons.store.tenancy import create_institution, create_project, create_user, set_membership

pytestmark = pytest.mark.timeout(120)

CLUSTER_TOML = """
name = "conformance"
[[sites]]
name = "north"
sovereign = true
power_cap_mw = 0.02   # 20 kW: two busy 8 x H100 nodes (7.28 kW each), not three
pue = 1.0
[[sites]]
name = "south"
sovereign = false
pue = 1.0
[[pools]]
name = "h100n"
site = "north"
model = "H100"
nodes = 3
gpus_per_node = 8
[[pools]]
name = "h100s"
site = "south"
model = "H100"
nodes = 2
gpus_per_node = 8
[[pools]]
name = "a100s"
site = "south"
model = "A100"
nodes = 2
gpus_per_node = 4
"""

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday morning


@dataclass(frozen=True)
class Submission:
    at_s: float  # after T0
    project: str
    gpus: int
    time_limit_s: int
    models: tuple[str, ...] = ()


SUBMISSIONS = (
    Submission(0, "gov", 8, 3600),
    Submission(0, "gov", 8, 7200),
    Submission(10, "gov", 8, 1800),  # a third busy north node would break the cap: waits (power)
    Submission(20, "lab", 12, 3600),  # even gang: 2 x 6 GPUs
    Submission(30, "lab", 4, 600, ("A100",)),
    Submission(40, "start", 2, 3600),  # 2 GPU-hours of a 3 GPU-hour budget
    Submission(50, "start", 2, 3600),  # would need 4: waits (budget) until never
    Submission(60, "lab", 16, 900),
    Submission(70, "nobody", 1, 60),  # no award: waits (no-award)
    Submission(4000, "lab", 8, 1200),
)


@dataclass
class Clock:
    now_s: float

    def __call__(self) -> float:
        return self.now_s


@dataclass
class TimedBackend:
    """Launches nothing; reports each job finished when its time limit has passed on the clock."""

    clock: Clock
    name: str = "timed"
    stops_unknown: bool = False
    even_gangs: bool = True
    ends: dict[int, float] = field(default_factory=dict)
    refs: dict[int, str] = field(default_factory=dict)

    def launch(self, spec: LaunchSpec) -> str:
        self.ends[spec.job_id] = self.clock.now_s + spec.time_limit_s
        self.refs[spec.job_id] = f"ref-{spec.job_id}"
        return self.refs[spec.job_id]

    def cancel(self, job_id: int, backend_ref: str) -> None:
        self.ends.pop(job_id, None)

    def poll(self) -> list[BackendEvent]:
        done = sorted((t, j) for j, t in self.ends.items() if t <= self.clock.now_s)
        for _, job_id in done:
            del self.ends[job_id]
        return [BackendEvent(j, "finished", t, self.refs[j], 0) for t, j in done]

    def adopt(self, running: Sequence[tuple[int, str]]) -> list[BackendEvent]:
        return []

    def unavailable_nodes(self) -> set[str]:
        return set()

    def next_end_s(self) -> float | None:
        return min(self.ends.values(), default=None)


Decision = tuple[float, str, int, tuple[tuple[int, tuple[int, ...]], ...], int | None, bool]


@contextmanager
def recorded(decisions: list[Decision], reasons: dict[int, str]) -> Iterator[None]:
    def record(snapshot: Snapshot, config: PolicyConfig, now: float) -> CycleResult:
        result = real_schedule(snapshot, config, now)
        for p in result.preemptions:
            decisions.append((now, "preempt", p.job_id, (), None, False))
        for s in result.starts:
            decisions.append((now, "start", s.job.id, s.placement.node_gpus, s.award_id, s.borrowing))
        for job_id, reason in result.pending:
            reasons[job_id] = reason.code
        return result

    with mock.patch.object(engine_cycle, "schedule", record):
        yield


def _world(tmp_path: Path, cluster: Cluster) -> tuple[str, dict[str, int]]:
    url = f"sqlite:///{tmp_path / 'gpuc.db'}"
    upgrade(url)
    sessions = session_factory(make_engine(url))
    with sessions() as s:
        projects = {}
        for name, kind, sovereign in (("gov", "public_agency", True), ("lab", "university", False)):
            inst = create_institution(s, f"{name} org", kind, "non_capital")
            projects[name] = create_project(s, name, inst.id, sovereign).id
        inst = create_institution(s, "start org", "startup", "capital")
        projects["start"] = create_project(s, "start", inst.id).id
        inst = create_institution(s, "nobody org", "startup", "capital")
        projects["nobody"] = create_project(s, "nobody", inst.id).id
        user = create_user(s, "alice")
        for project_id in projects.values():
            set_membership(s, project_id, user.id, "member")
        h100 = create_program(
            s,
            name="h100",
            model="H100",
            capacity_gpus=40,
            unit_gpus=8,
            duration_days=30,
            price_krw_per_gpu_hour=3600.0,
        )
        a100 = create_program(
            s,
            name="a100",
            model="A100",
            capacity_gpus=8,
            unit_gpus=4,
            duration_days=30,
            price_krw_per_gpu_hour=1800.0,
        )
        grants = (
            ("gov", h100.id, None, 16),
            ("lab", h100.id, 100.0, 8),
            ("lab", a100.id, 50.0, 4),
            ("start", h100.id, 3.0, 0),
        )
        for project, program_id, budget, guaranteed in grants:
            terms = award_repo.AwardTerms(projects[project], program_id, None, budget, guaranteed)
            award = award_repo.create_award(s, terms, T0 - timedelta(days=1))
            award_repo.activate_award(s, award.id, T0 - timedelta(days=1))
        s.commit()
        del cluster
    return url, projects


def _live(
    tmp_path: Path, cluster: Cluster
) -> tuple[list[Decision], dict[int, str], list[Award], dict[int, str]]:
    url, projects = _world(tmp_path, cluster)
    sessions = session_factory(make_engine(url))
    clock = Clock(T0.timestamp())
    backend = TimedBackend(clock)
    policy = build_policy("quota", commons=live_commons(backend))
    state = DatabaseSchedulerState(sessions, cluster)
    engine = LiveEngine(state, backend, cluster, policy, EngineOptions(logs_dir=tmp_path / "jobs"), clock)
    decisions: list[Decision] = []
    reasons: dict[int, str] = {}
    queue = list(SUBMISSIONS)
    with recorded(decisions, reasons):
        while queue or backend.ends:
            arrival = T0.timestamp() + queue[0].at_s if queue else float("inf")
            end = backend.next_end_s()
            clock.now_s = arrival if end is None else min(arrival, end)
            with sessions() as s:
                while queue and T0.timestamp() + queue[0].at_s == clock.now_s:
                    sub = queue.pop(0)
                    request = JobRequest(
                        gpus=sub.gpus, command=["true"], models=sub.models, time_limit=f"{sub.time_limit_s}s"
                    )
                    submit_job(
                        s,
                        cluster,
                        projects[sub.project],
                        1,
                        request,
                        datetime.fromtimestamp(clock.now_s, UTC),
                    )
                s.commit()
            engine.step()
    with sessions() as s:
        tenants = {pid: name for name, pid in projects.items()}
        awards = [
            award_of(a, tenants[a.project_id]) for a in s.scalars(select(AwardRow).order_by(AwardRow.id))
        ]
        final = {
            row.id: row.reason_code for row in s.scalars(select(JobRow).where(JobRow.state == "pending"))
        }
    return decisions, reasons, awards, final


def _sim(cluster: Cluster, awards: list[Award]) -> tuple[list[Decision], dict[int, str], SimResultAwards]:
    jobs = [
        Job(
            id=i,
            tenant=sub.project,
            gpus=sub.gpus,
            submit_s=T0.timestamp() + sub.at_s,
            duration_s=float(sub.time_limit_s),
            estimate_s=float(sub.time_limit_s),
            accepted_models=frozenset(sub.models),
        )
        for i, sub in enumerate(SUBMISSIONS, start=1)
    ]
    fresh = [
        Award(a.id, a.tenant, a.guaranteed_gpus, a.models, a.gpu_hours_budget, 0.0, a.starts_s, a.ends_s)
        for a in awards
    ]
    by_tenant: dict[str, tuple[Award, ...]] = {}
    for a in fresh:
        by_tenant[a.tenant] = (*by_tenant.get(a.tenant, ()), a)
    policy = build_policy("quota", commons=live_commons(TimedBackend(Clock(0.0))))
    options = SimOptions(restart_overhead_s=0.0, awards=by_tenant, sovereign_tenants=frozenset({"gov"}))
    decisions: list[Decision] = []
    reasons: dict[int, str] = {}
    with recorded(decisions, reasons):
        result = simulate(jobs, cluster, policy, options)
    assert result.awards is not None
    return decisions, reasons, {a.id: a.gpu_hours_used for g in result.awards.values() for a in g}


SimResultAwards = dict[int, float]


def test_simulator_and_live_store_decide_alike(tmp_path: Path) -> None:
    cluster = parse_cluster(CLUSTER_TOML, "conformance")
    live, live_reasons, awards, live_pending = _live(tmp_path, cluster)
    sim, sim_reasons, sim_spend = _sim(cluster, awards)
    assert live == sim
    # The scenario exercises every rule: the cap held a sovereign job back, budgets and missing awards
    # left jobs waiting, and the 12-GPU job ran as an even gang.
    assert {"power", "budget", "no-award"} <= set(live_reasons.values())
    assert live_pending == {7: "budget", 9: "no-award"}
    assert {j: sim_reasons[j] for j in live_pending} == live_pending
    gang = next(d for d in live if d[1] == "start" and d[2] == 4)
    assert [len(g) for _, g in gang[3]] == [6, 6]
    north = {n.index for n in cluster.nodes if n.pool == "h100n"}
    assert all({node for node, _ in d[3]} <= north for d in live if d[1] == "start" and d[2] in (1, 2, 3))
    assert {a.id: a.gpu_hours_used for a in awards} == pytest.approx(sim_spend)
