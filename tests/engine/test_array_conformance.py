"""A job array with a ``%N`` limit replayed through the simulator's store and through ``LiveStore`` on a
real SQLite database (the conformance scenario's world, clock and scripted backend): both stores hand
the ``array-limit`` stage the same view, so every start, placement and award is identical, and the
limit holds in both."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from gpucommons.clusterfile import parse_cluster
from gpucommons.domain.arrays import parse_array_spec
from gpucommons.domain.award import Award
from gpucommons.domain.cluster import Cluster
from gpucommons.domain.job import Job
from gpucommons.engine.live import EngineOptions, LiveEngine, live_commons
from gpucommons.policy.registry import build_policy
from gpucommons.sim.runner import SimOptions, simulate
from gpucommons.store.arrays import submit_array
from gpucommons.store.awards import AwardRow
from gpucommons.store.base import make_engine, session_factory
from gpucommons.store.jobs import JobRequest, submit_job
from gpucommons.store.scheduler_state import DatabaseSchedulerState
from gpucommons.store.state_store import award_of
from tests.conftest import most_overlapping
from tests.engine.test_conformance import (
    CLUSTER_TOML,
    T0,
    Clock,
    Decision,
    TimedBackend,
    _world,
    recorded,
)

TASKS, LIMIT, TASK_GPUS, TASK_S = 6, 2, 4, 600
PLAIN_AT_S, PLAIN_GPUS, PLAIN_S = 10, 8, 900


def _live(tmp_path: Path, cluster: Cluster) -> tuple[list[Decision], dict[int, str], list[Award]]:
    url, projects = _world(tmp_path, cluster)
    sessions = session_factory(make_engine(url))
    clock = Clock(T0.timestamp())
    backend = TimedBackend(clock)
    engine = LiveEngine(
        DatabaseSchedulerState(sessions, cluster),
        backend,
        cluster,
        build_policy("quota", commons=live_commons(backend)),
        EngineOptions(logs_dir=tmp_path / "jobs"),
        clock,
    )
    task = JobRequest(gpus=TASK_GPUS, command=["true"], models=("H100",), time_limit=f"{TASK_S}s")
    plain = JobRequest(gpus=PLAIN_GPUS, command=["true"], models=("H100",), time_limit=f"{PLAIN_S}s")
    decisions: list[Decision] = []
    reasons: dict[int, str] = {}
    with recorded(decisions, reasons):
        with sessions() as s:
            spec = parse_array_spec(f"0-{TASKS - 1}%{LIMIT}", 100)
            submit_array(s, cluster, projects["lab"], 1, task, spec, T0)
            s.commit()
        engine.step()
        clock.now_s = T0.timestamp() + PLAIN_AT_S
        with sessions() as s:
            submit_job(s, cluster, projects["lab"], 1, plain, datetime.fromtimestamp(clock.now_s, UTC))
            s.commit()
        engine.step()
        while backend.ends:
            end = backend.next_end_s()
            assert end is not None
            clock.now_s = end
            engine.step()
    tenants = {pid: name for name, pid in projects.items()}
    with sessions() as s:
        awards = [
            award_of(a, tenants[a.project_id]) for a in s.scalars(select(AwardRow).order_by(AwardRow.id))
        ]
    return decisions, reasons, awards


def _sim(cluster: Cluster, awards: list[Award]) -> list[Decision]:
    """The same submissions replayed, on the awards as they stood before anything was charged."""
    start = T0.timestamp()
    jobs = [
        Job(i, "lab", TASK_GPUS, start, TASK_S, TASK_S, accepted_models=frozenset({"H100"}), array_id=1)
        for i in range(1, TASKS + 1)
    ]
    plain_s = start + PLAIN_AT_S
    jobs.append(
        Job(TASKS + 1, "lab", PLAIN_GPUS, plain_s, PLAIN_S, PLAIN_S, accepted_models=frozenset({"H100"}))
    )
    by_tenant: dict[str, tuple[Award, ...]] = {}
    for a in awards:
        by_tenant[a.tenant] = (*by_tenant.get(a.tenant, ()), replace(a, gpu_hours_used=0.0))
    options = SimOptions(
        restart_overhead_s=0.0,
        awards=by_tenant,
        sovereign_tenants=frozenset({"gov"}),
        array_limits={1: LIMIT},
    )
    decisions: list[Decision] = []
    with recorded(decisions, {}):
        simulate(
            jobs, cluster, build_policy("quota", commons=live_commons(TimedBackend(Clock(0.0)))), options
        )
    return decisions


def test_simulator_and_live_store_hold_an_array_alike(tmp_path: Path) -> None:
    cluster = parse_cluster(CLUSTER_TOML, "conformance")
    live, reasons, awards = _live(tmp_path, cluster)
    assert live == _sim(cluster, awards)
    starts = {d[2]: d[0] for d in live if d[1] == "start"}
    assert sorted(starts) == list(range(1, TASKS + 2))  # every task and the plain job ran
    spans = [(starts[j], starts[j] + TASK_S) for j in range(1, TASKS + 1)]
    assert most_overlapping(spans) == LIMIT
    assert starts[TASKS + 1] == T0.timestamp() + PLAIN_AT_S  # the plain job is not held behind it
    assert "array-limit" in reasons.values()
