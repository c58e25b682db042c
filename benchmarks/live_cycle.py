"""How long one live scheduler cycle takes on a large commons: 100,000 pending and 10,000 running jobs on
a 25,000-node cluster (8 GPUs a node), with a trickle of arrivals, cancels and finishes between cycles.

It builds a fresh database (a SQLite file by default; with ``--database-url`` a database made for the
run on that PostgreSQL server, and dropped after it): a generated cluster file, ``--tenants``
projects with awards (a few with spent budgets, a few with none), running jobs packed onto the nodes
until they hold 99 % of the GPUs (their allocations included), a history of metered segments, and the
pending queue, written in bulk from the store's own ``job_values`` (on PostgreSQL then analysed, as
autovacuum would have). Then it runs the real
``LiveEngine`` (the service's policy, ``quota``, with the live commons) over a backend that accepts
every launch and runs nothing. Before each step it submits ``--arrivals`` jobs and cancels one pending
job through the API's store functions, and the backend reports ``--finishes`` running jobs finished.
``--warmup`` such steps fill the GPUs left free at the start; ``--cycles`` are measured, then
``--idle`` steps with nothing changed.

Per measured step, median and p99: ``cycle`` (snapshot, decisions, their recording and commit),
``policy`` (the policy's ``schedule`` alone), ``database`` (``cycle`` less ``policy``: reading the
snapshot, recording, committing) split into ``snapshot``, ``record`` and ``commit``, ``step`` (the
whole step: backend events, the cycle and the launches), and this process's CPU time in the cycle
and in the policy (steadier than wall time on a busy machine; PostgreSQL's own work is not in it).
The first step (taking the lease, adopting the running jobs, the first reasons) is timed on its own.

``--baseline-src PATH`` runs the same workload twice, each in a process of its own: first with the
package at ``PATH/src`` (a checkout of the code before a change, e.g. ``git worktree add``), then with
this checkout's, and prints both side by side.

    .venv/bin/python benchmarks/live_cycle.py
    .venv/bin/python benchmarks/live_cycle.py --pending 10000 --running 1000 --nodes 2500 --cycles 10
    .venv/bin/python benchmarks/live_cycle.py --baseline-src /tmp/base --cycles 10
    .venv/bin/python benchmarks/live_cycle.py --database-url postgresql+psycopg://u@host/db

Goal: a median ``cycle`` of at most 100 ms at the default size.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

import gpucommons.engine.cycle as engine_cycle
import gpucommons.engine.live as engine_live
from gpucommons.clusterfile import load_cluster
from gpucommons.domain.cluster import Cluster
from gpucommons.engine.live import EngineOptions, LiveEngine, live_commons
from gpucommons.engine.ports import BackendEvent, LaunchSpec
from gpucommons.policy.priority import PriorityClasses
from gpucommons.policy.registry import build_policy
from gpucommons.store import awards as award_repo
from gpucommons.store.base import make_engine, session_factory, upgrade
from gpucommons.store.calls import create_program
from gpucommons.store.jobs import AllocationRow, JobRequest, JobRow, job_values, request_cancel, submit_job
from gpucommons.store.scheduler_state import DatabaseSchedulerState, DatabaseTransaction
from gpucommons.store.scratch import scratch_postgres
from gpucommons.store.state_store import LiveStore
from gpucommons.store.tenancy import create_institution, create_project, create_user, set_membership
from gpucommons.store.usage import UsageRow

GPUS_PER_NODE = 8
FILL = 0.99  # the share of the cluster's GPUs the running jobs hold at the start
SIZES = (1, 2, 4, 8, 16, 32, 64)  # GPUs of a running job
PENDING_SIZES = ((1, 30), (2, 20), (4, 15), (8, 20), (16, 10), (32, 5))  # (GPUs, weight)
SPENT_SHARE = 0.05  # tenants whose award's budget is spent: their jobs wait with ``budget``
UNAWARDED_SHARE = 0.02  # tenants with no award: ``no-award``
BATCH = 5_000  # rows per bulk insert
JOBS: Table = JobRow.__table__  # type: ignore[assignment]


def _cluster_file(home: Path, nodes: int) -> Path:
    """Five H100 pools over two sites."""
    pools = 5 if nodes >= 5 else 1
    text = 'name = "bench"\n[[sites]]\nname = "north"\n[[sites]]\nname = "south"\n'
    for i in range(pools):
        count = nodes // pools + (1 if i < nodes % pools else 0)
        site = "north" if i % 2 == 0 else "south"
        text += (
            f'[[pools]]\nname = "h100{chr(97 + i)}"\nsite = "{site}"\nmodel = "H100"\n'
            f"nodes = {count}\ngpus_per_node = {GPUS_PER_NODE}\n"
        )
    path = home / "bench-cluster.toml"
    path.write_text(text)
    return path


def _size_weights(mean_gpus: float) -> list[float]:
    """Weights over ``SIZES`` proportional to ``size ** beta``, with ``beta`` found by bisection so the
    mean size is ``mean_gpus`` (running jobs that fill the cluster whatever their number)."""
    target = min(max(mean_gpus, SIZES[0]), SIZES[-1])
    low, high = -20.0, 20.0
    for _ in range(60):
        beta = (low + high) / 2
        weights = [s**beta for s in SIZES]
        mean = sum(s * w for s, w in zip(SIZES, weights, strict=True)) / sum(weights)
        low, high = (beta, high) if mean < target else (low, beta)
    return [s**low for s in SIZES]


@dataclass
class Tenants:
    project_ids: list[int]
    guaranteed: dict[int, int]  # project id -> guaranteed GPUs
    award_of: dict[int, int]  # project id -> its award (none for the unawarded)
    user_id: int


def _tenants(sessions: sessionmaker[Session], count: int, total_gpus: int, now: datetime) -> Tenants:
    """``count`` projects through the store's own functions, each guaranteed a share of nine tenths of
    the cluster; a few hold a spent budget, a few no award at all."""
    with sessions() as s:
        user = create_user(s, "bench")
        program = create_program(
            s,
            name="bench-call",
            model="H100",
            capacity_gpus=total_gpus,
            unit_gpus=1,
            duration_days=365,
            price_krw_per_gpu_hour=3600,
        )
        share = max(1, int(0.9 * total_gpus / count))
        spent = max(1, int(count * SPENT_SHARE))
        unawarded = max(1, int(count * UNAWARDED_SHARE))
        ids: list[int] = []
        guaranteed: dict[int, int] = {}
        award_of: dict[int, int] = {}
        for i in range(count):
            inst = create_institution(s, f"inst-{i}", "university", "non_capital")
            project = create_project(s, f"p{i:04d}", inst.id)
            set_membership(s, project.id, user.id, "member")
            ids.append(project.id)
            if i >= count - unawarded:
                continue
            budget = 1_000.0 if i >= count - unawarded - spent else None
            terms = award_repo.AwardTerms(
                project.id, program.id, gpu_hours_budget=budget, guaranteed_gpus=share
            )
            award = award_repo.create_award(s, terms, now - timedelta(days=30))
            award_repo.activate_award(s, award.id, now - timedelta(days=30))
            if budget is not None:
                award.gpu_hours_used = budget
            guaranteed[project.id] = share
            award_of[project.id] = award.id
        s.commit()
        return Tenants(ids, guaranteed, award_of, user.id)


def _insert(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), BATCH):
        session.execute(insert(table), rows[i : i + BATCH])


def _job_rows(
    cluster: Cluster, tenants: Tenants, rng: random.Random, count: int, now: datetime, key: str
) -> list[dict[str, Any]]:
    """``count`` pending jobs' columns, as ``job_values`` builds them for a submission."""
    sizes, weights = zip(*PENDING_SIZES, strict=True)
    templates: dict[tuple[int, int], dict[str, Any]] = {}
    rows = []
    for i in range(count):
        gpus = rng.choices(sizes, weights)[0]
        project = tenants.project_ids[rng.randrange(len(tenants.project_ids))]
        hours = rng.choice((1, 2, 4, 8, 24))
        template = templates.get((gpus, hours))
        if template is None:
            request = JobRequest(gpus=gpus, command=["python", "train.py"], time_limit=f"{hours}h")
            template = templates[(gpus, hours)] = job_values(cluster, 0, tenants.user_id, request, now)
        rows.append(
            {
                **template,
                "project_id": project,
                "submitted_at": now - timedelta(seconds=rng.uniform(0, 3 * 86_400)),
                "idempotency_key": f"{key}-{i}",
            }
        )
    rows.sort(key=lambda r: r["submitted_at"])  # ids in submission order, as the API writes them
    return rows


def _running(
    session: Session, cluster: Cluster, tenants: Tenants, rng: random.Random, count: int, now: datetime
) -> int:
    """Running jobs packed first-fit onto the nodes until ``count`` or ``FILL`` of the GPUs, with their
    allocations; a tenant's GPUs beyond its guarantee are borrowed. Returns how many were written."""
    total = cluster.total_gpus
    weights = _size_weights(FILL * total / max(1, count))
    awarded = [p for p in tenants.project_ids if p in tenants.award_of]
    used: dict[int, int] = dict.fromkeys(awarded, 0)
    node, free = 0, cluster.nodes[0].gpus if cluster.nodes else 0
    template = job_values(cluster, 0, tenants.user_id, JobRequest(gpus=1, command=["true"]), now)
    jobs: list[dict[str, Any]] = []
    placements: list[list[tuple[int, int]]] = []
    held = 0
    while len(jobs) < count and held < FILL * total:
        gpus = rng.choices(SIZES, weights)[0]
        gpus = min(gpus, total - held)
        devices: list[tuple[int, int]] = []
        if gpus < GPUS_PER_NODE:
            if free < gpus:
                node, free = node + 1, GPUS_PER_NODE
            if node >= len(cluster.nodes):
                break
            first = GPUS_PER_NODE - free
            devices = [(node, first + g) for g in range(gpus)]
            free -= gpus
        else:
            gpus -= gpus % GPUS_PER_NODE
            if free < GPUS_PER_NODE:
                node, free = node + 1, GPUS_PER_NODE
            whole = gpus // GPUS_PER_NODE
            if node + whole > len(cluster.nodes):
                break
            devices = [(n, g) for n in range(node, node + whole) for g in range(GPUS_PER_NODE)]
            node, free = node + whole, GPUS_PER_NODE
            if node >= len(cluster.nodes):
                free = 0
        project = min(awarded, key=lambda p: (used[p] / tenants.guaranteed[p], rng.random()))
        borrowing = used[project] + gpus > tenants.guaranteed[project]
        used[project] += gpus
        held += gpus
        started = now - timedelta(seconds=rng.uniform(60, 20 * 3600))
        jobs.append(
            {
                **template,
                "project_id": project,
                "gpus": gpus,
                "time_limit_s": 24 * 3600.0,
                "state": "running",
                "reason_code": "",
                "reason": "",
                "submitted_at": started - timedelta(seconds=rng.uniform(0, 3600)),
                "started_at": started,
                "backend": "bench",
                "borrowing": borrowing,
                "award_id": tenants.award_of[project],
                "idempotency_key": f"running-{len(jobs)}",
            }
        )
        placements.append(devices)
    _insert(session, JobRow.__table__, jobs)
    ids = list(session.scalars(select(JobRow.id).where(JobRow.state == "running").order_by(JobRow.id)))
    allocations: list[dict[str, Any]] = []
    for job_id, devices in zip(ids, placements, strict=True):
        allocations.extend(
            {"job_id": job_id, "node_index": n, "node_name": cluster.nodes[n].name, "gpu_index": g}
            for n, g in devices
        )
    _insert(session, AllocationRow.__table__, allocations)
    refs = [{"job": job_id, "ref": f"bench:{job_id}"} for job_id in ids]
    session.execute(
        update(JOBS).where(JOBS.c.id == bindparam("job")).values(backend_ref=bindparam("ref")), refs
    )
    return len(ids)


def _history(session: Session, cluster: Cluster, tenants: Tenants, rng: random.Random, now: datetime) -> int:
    """Finished jobs of the last 30 days, one metered segment each (what decayed usage reads)."""
    count = max(1, len(tenants.project_ids) * 100)
    template = job_values(cluster, 0, tenants.user_id, JobRequest(gpus=8, command=["true"]), now)
    jobs, spans = [], []
    for i in range(count):
        project = tenants.project_ids[rng.randrange(len(tenants.project_ids))]
        start = now - timedelta(seconds=rng.uniform(3600, 30 * 86_400))
        end = start + timedelta(seconds=rng.uniform(60, 12 * 3600))
        jobs.append(
            {
                **template,
                "project_id": project,
                "state": "finished",
                "submitted_at": start,
                "started_at": start,
                "ended_at": end,
                "idempotency_key": f"done-{i}",
            }
        )
        spans.append((project, start, end))
    _insert(session, JobRow.__table__, jobs)
    ids = list(session.scalars(select(JobRow.id).where(JobRow.state == "finished").order_by(JobRow.id)))
    usage = []
    for job_id, (project, start, end) in zip(ids, spans, strict=True):
        hours = 8 * (end - start).total_seconds() / 3600
        usage.append(
            {
                "job_id": job_id,
                "project_id": project,
                "award_id": tenants.award_of.get(project),
                "started_at": start,
                "ended_at": end,
                "gpus": 8,
                "model": "H100",
                "gpu_hours": hours,
                "energy_kwh": hours * 0.7,
                "cost_krw": round(hours * 3600),
                "co2_kg": 0.0,
                "flops": 0.0,
                "backend_ref": f"bench:{job_id}",
                "site": "north",
                "rate": 1.0,
            }
        )
    _insert(session, UsageRow.__table__, usage)
    return len(usage)


class AcceptingBackend:
    """Accepts every launch and runs nothing; reports the ends the driver asks for at the next poll,
    and a cancelled end for every job it is asked to stop."""

    name = "bench"
    stops_unknown = True
    even_gangs = False

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.running: dict[int, str] = {}
        self.events: list[BackendEvent] = []
        self.launches = 0

    def launch(self, spec: LaunchSpec) -> str:
        self.launches += 1
        ref = f"bench:{spec.job_id}:{self.launches}"
        self.running[spec.job_id] = ref
        return ref

    def cancel(self, job_id: int, backend_ref: str) -> None:
        if self.running.get(job_id) == backend_ref:
            del self.running[job_id]
        self.events.append(BackendEvent(job_id, "cancelled", time.time(), backend_ref))

    def finish(self, count: int) -> None:
        """``count`` running jobs, chosen by the seeded generator, end at the next poll."""
        ids = sorted(self.running)
        for job_id in self.rng.sample(ids, min(count, len(ids))):
            ref = self.running.pop(job_id)
            self.events.append(BackendEvent(job_id, "finished", time.time(), ref, 0))

    def poll(self) -> list[BackendEvent]:
        events, self.events = self.events, []
        return events

    def adopt(self, running: Sequence[tuple[int, str]]) -> list[BackendEvent]:
        for job_id, ref in running:
            self.running[job_id] = ref
        return []

    def unavailable_nodes(self) -> set[str]:
        return set()


@dataclass
class Timer:
    """Seconds per phase of the current step, filled by the wrappers ``install`` puts around the
    engine's pieces (the code measured is not changed)."""

    snapshot: float = 0.0
    policy: float = 0.0
    record: float = 0.0
    commit: float = 0.0
    cycle: float = 0.0
    cycle_cpu: float = 0.0  # this process's CPU seconds in the cycle (on a busy machine, the steadier)
    policy_cpu: float = 0.0
    decided: bool = False  # the policy ran this step (a cycle the engine skipped does not)
    _cycle_end: float | None = None

    def reset(self) -> None:
        self.snapshot = self.policy = self.record = self.commit = self.cycle = 0.0
        self.cycle_cpu = self.policy_cpu = 0.0
        self.decided, self._cycle_end = False, None


def _timed(
    add: Callable[[float], None], call: Callable[..., Any], add_cpu: Callable[[float], None] | None = None
) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started, started_cpu = time.perf_counter(), time.process_time()
        try:
            return call(*args, **kwargs)
        finally:
            add(time.perf_counter() - started)
            if add_cpu is not None:
                add_cpu(time.process_time() - started_cpu)

    return timed


def install(timer: Timer) -> None:
    """Wrap ``schedule``, ``run_cycle``, ``LiveStore.snapshot``/``record`` and the first commit after a
    cycle (the one that makes its decisions durable, with the lease's fence before it)."""

    def add_policy(s: float) -> None:
        timer.policy += s
        timer.decided = True

    def add_policy_cpu(s: float) -> None:
        timer.policy_cpu += s

    def add_cycle_cpu(s: float) -> None:
        timer.cycle_cpu += s

    def add_snapshot(s: float) -> None:
        timer.snapshot += s

    def add_record(s: float) -> None:
        timer.record += s

    def add_cycle(s: float) -> None:
        timer.cycle += s
        timer._cycle_end = time.perf_counter()

    schedule, run_cycle = getattr(engine_cycle, "schedule"), getattr(engine_live, "run_cycle")  # noqa: B009
    setattr(engine_cycle, "schedule", _timed(add_policy, schedule, add_policy_cpu))  # noqa: B010
    setattr(engine_live, "run_cycle", _timed(add_cycle, run_cycle, add_cycle_cpu))  # noqa: B010
    setattr(LiveStore, "snapshot", _timed(add_snapshot, LiveStore.snapshot))  # noqa: B010
    unchanged = getattr(LiveStore, "unchanged", None)
    if unchanged is not None:  # a store that reads before the cycle, to tell whether to skip it

        def add_read(s: float) -> None:
            timer.snapshot += s
            timer.cycle += s

        setattr(LiveStore, "unchanged", _timed(add_read, unchanged, add_cycle_cpu))  # noqa: B010
    setattr(LiveStore, "record", _timed(add_record, LiveStore.record))  # noqa: B010
    commit = DatabaseTransaction.commit

    def timed_commit(self: DatabaseTransaction) -> None:
        started_cpu = time.process_time()
        commit(self)
        if timer._cycle_end is not None:  # fence and commit of the cycle's transaction
            spent = time.perf_counter() - timer._cycle_end
            timer.commit += spent
            timer.cycle += spent
            timer.cycle_cpu += time.process_time() - started_cpu
            timer._cycle_end = None

    setattr(DatabaseTransaction, "commit", timed_commit)  # noqa: B010


@dataclass
class Figures:
    setup: dict[str, float | int] = field(default_factory=dict)
    first_step_s: float = 0.0
    steps: list[dict[str, float]] = field(default_factory=list)
    idle: list[dict[str, float]] = field(default_factory=list)
    started: int = 0


@contextmanager
def scratch_database(server_url: str, home: Path) -> Iterator[str]:
    """A fresh database: a SQLite file in ``home``, or on the PostgreSQL server of ``server_url`` (whose
    user may create databases) one made for this run and dropped after it."""
    if not server_url:
        yield f"sqlite:///{home / 'gpuc.db'}"
        return
    with scratch_postgres(server_url, "gpuc_live_cycle_") as url:
        yield url


def run(args: argparse.Namespace) -> Figures:
    home = Path(tempfile.mkdtemp(prefix="gpuc-live-cycle-"))
    with scratch_database(args.database_url, home) as url:
        return _run(args, home, url)


def _run(args: argparse.Namespace, home: Path, url: str) -> Figures:
    figures = Figures()
    rng = random.Random(args.seed)
    began = time.perf_counter()
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    cluster = load_cluster(str(_cluster_file(home, args.nodes)))
    now = datetime.now(UTC)
    tenants = _tenants(sessions, args.tenants, cluster.total_gpus, now)
    with sessions() as s:
        running = _running(s, cluster, tenants, rng, args.running, now)
        history = _history(s, cluster, tenants, rng, now)
        _insert(s, JobRow.__table__, _job_rows(cluster, tenants, rng, args.pending, now, "queued"))
        s.commit()
    if engine.dialect.name == "postgresql":  # what autovacuum does to a server that has been running
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    figures.setup = {
        "nodes": len(cluster.nodes),
        "gpus": cluster.total_gpus,
        "tenants": args.tenants,
        "pending": args.pending,
        "running": running,
        "usage_rows": history,
        "setup_s": time.perf_counter() - began,
    }

    backend = AcceptingBackend(random.Random(args.seed + 1))
    policy = build_policy("quota", commons=live_commons(backend))
    policy = replace(policy, priority_classes=PriorityClasses())  # the service's default table
    live = LiveEngine(
        DatabaseSchedulerState(sessions, cluster),
        backend,
        cluster,
        policy,
        EngineOptions(logs_dir=home / "jobs", lease_ttl_s=600.0),
    )
    timer = Timer()
    install(timer)
    began = time.perf_counter()
    report = live.step()
    figures.first_step_s = time.perf_counter() - began
    figures.started += report.started

    submitted = 0

    def trickle() -> None:
        nonlocal submitted
        with sessions() as s:  # what POST /jobs and POST /jobs/{id}/cancel do, each committed
            for _ in range(args.arrivals):
                gpus = rng.choices(*zip(*PENDING_SIZES, strict=True))[0]
                project = tenants.project_ids[rng.randrange(len(tenants.project_ids))]
                request = JobRequest(
                    gpus=gpus,
                    command=["python", "train.py"],
                    time_limit="4h",
                    idempotency_key=f"new-{submitted}",
                )
                submit_job(s, cluster, project, tenants.user_id, request, datetime.now(UTC))
                s.commit()
                submitted += 1
            victim = s.scalar(
                select(JobRow).where(JobRow.state == "pending").order_by(JobRow.id.desc()).limit(1)
            )
            if victim is not None:
                request_cancel(s, victim, datetime.now(UTC))
                s.commit()
        backend.finish(args.finishes)

    for _ in range(args.warmup):  # the free GPUs left at the start fill up: not the steady state
        trickle()
        figures.started += live.step().started
    profiler = _profiler(args.profile)
    for phase, count, changes in (("steps", args.cycles, True), ("idle", args.idle, False)):
        for _ in range(count):
            if changes:
                trickle()
            timer.reset()
            if profiler is not None:
                profiler.start()
            began = time.perf_counter()
            report = live.step()
            step_s = time.perf_counter() - began
            if profiler is not None:
                profiler.stop()
            figures.started += report.started
            if args.verbose:
                print(
                    f"{phase} step {step_s * 1000:.0f} ms: cycle {timer.cycle * 1000:.0f} (policy "
                    f"{timer.policy * 1000:.0f}, snapshot {timer.snapshot * 1000:.0f}, record "
                    f"{timer.record * 1000:.0f}, commit {timer.commit * 1000:.0f}; CPU "
                    f"{timer.cycle_cpu * 1000:.0f}, policy {timer.policy_cpu * 1000:.0f}), "
                    f"{report.started} started",
                    file=sys.stderr,
                )
            getattr(figures, phase).append(
                {
                    "step": step_s,
                    "cycle": timer.cycle,
                    "policy": timer.policy,
                    "database": timer.cycle - timer.policy,
                    "snapshot": timer.snapshot,
                    "record": timer.record,
                    "commit": timer.commit,
                    "cycle_cpu": timer.cycle_cpu,
                    "policy_cpu": timer.policy_cpu,
                    "decided": float(timer.decided),
                    "started": float(report.started),
                }
            )
    if profiler is not None:
        Path(args.profile).write_text(profiler.output_text(unicode=True, show_all=True))
    engine.dispose()
    return figures


def _profiler(path: str) -> Any:
    if not path:
        return None
    from pyinstrument import Profiler  # a development tool: imported only when asked for

    return Profiler(interval=0.0005)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


METRICS = ("cycle", "policy", "database", "snapshot", "record", "commit", "step", "cycle_cpu", "policy_cpu")


def _print(results: list[tuple[str, dict[str, Any]]]) -> None:
    setup = results[-1][1]["setup"]
    print(
        f"{setup['nodes']:,} nodes ({setup['gpus']:,} GPUs), {setup['tenants']} tenants, "
        f"{setup['pending']:,} pending, {setup['running']:,} running, {setup['usage_rows']:,} usage rows"
    )
    for name, r in results:
        steps = r["steps"]
        decided = sum(int(s["decided"]) for s in steps)
        print(
            f"{name}: setup {r['setup']['setup_s']:.1f} s, first step {r['first_step_s']:.2f} s, "
            f"{len(steps)} measured steps ({decided} decided), {r['started']} jobs started in all"
        )
    header = f"{'ms':<10}" + "".join(f"{name + ' median':>22}{name + ' p99':>18}" for name, _ in results)
    print(header)
    for metric in METRICS:
        line = f"{metric:<10}"
        for _, r in results:
            values = [1000 * s[metric] for s in r["steps"]]
            line += f"{_quantile(values, 0.5):>22.1f}{_quantile(values, 0.99):>18.1f}"
        print(line)
    if any(r["idle"] for _, r in results):
        line = f"{'idle step':<10}"
        for _, r in results:
            values = [1000 * s["step"] for s in r["idle"]]
            decided = sum(int(s["decided"]) for s in r["idle"])
            line += f"{_quantile(values, 0.5):>22.1f}{f'{decided}/{len(values)} decided':>18}"
        print(line)


def _run_in_process_of(src: Path, argv: list[str]) -> dict[str, Any]:
    """This script with ``src`` first on the import path, its figures read back as JSON."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "PYTHONPATH": str(src)}
        subprocess.run([sys.executable, __file__, *argv, "--json-out", out.name], env=env, check=True)
        data: dict[str, Any] = json.loads(Path(out.name).read_text())
        return data


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--running", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=25_000, help="8-GPU nodes in the generated cluster")
    parser.add_argument("--tenants", type=int, default=500)
    parser.add_argument("--cycles", type=int, default=20, help="measured steps with changes before each")
    parser.add_argument("--idle", type=int, default=3, help="measured steps with nothing changed")
    parser.add_argument("--warmup", type=int, default=5, help="steps with changes before the measured ones")
    parser.add_argument("--arrivals", type=int, default=20, help="jobs submitted before each step")
    parser.add_argument("--finishes", type=int, default=20, help="running jobs that end before each step")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=os.environ.get("GPUC_BENCH_DATABASE_URL", ""))
    parser.add_argument("--baseline-src", default="", help="a checkout's src/ (or checkout) to compare with")
    parser.add_argument("--profile", default="", help="write a pyinstrument profile of the steps here")
    parser.add_argument("--verbose", action="store_true", help="print every measured step")
    parser.add_argument("--json-out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name, least in (("pending", 0), ("running", 0), ("nodes", 1), ("tenants", 1), ("cycles", 1)):
        if getattr(args, name) < least:
            parser.error(f"--{name} must be at least {least}, got {getattr(args, name)}")
    for name in ("idle", "warmup", "arrivals", "finishes"):
        if getattr(args, name) < 0:
            parser.error(f"--{name} must not be negative, got {getattr(args, name)}")
    if args.baseline_src:
        base = Path(args.baseline_src)
        base = base / "src" if (base / "src" / "gpucommons").is_dir() else base
        if not (base / "gpucommons").is_dir():
            parser.error(f"--baseline-src {args.baseline_src}: no gpucommons package there")
        argv = [a for a in sys.argv[1:] if not a.startswith("--baseline-src")]
        if args.baseline_src in argv:
            argv.remove(args.baseline_src)
        before = _run_in_process_of(base.resolve(), argv)
        after = _run_in_process_of(Path(__file__).resolve().parents[1] / "src", argv)
        _print([("before", before), ("after", after)])
        return
    figures = run(args)
    data = {
        "setup": figures.setup,
        "first_step_s": figures.first_step_s,
        "steps": figures.steps,
        "idle": figures.idle,
        "started": figures.started,
    }
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(data))
        return
    _print([("now", data)])


if __name__ == "__main__":
    main()
