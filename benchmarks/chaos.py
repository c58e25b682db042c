"""Chaos harness: the live service under kill -9, cancels, a rival scheduler and drained nodes, then
checked against what really ran.

It runs this checkout's real service (``gpuc up``, ``gpuc server [--no-scheduler]``, ``gpuc scheduler``;
``chaos_service.py``) with the local backend on a generated cluster (``--gpus``), on SQLite and on
PostgreSQL, sets up tenants through the API as an admin does (institutions of several kinds,
projects with members, two priced programs, awards with and without guarantees, so the quota policy
borrows and reclaims), and submits ``--jobs`` short jobs (``sleep`` of a few hundredths of a second,
some longer; 1 to 8 GPUs, gangs across nodes; three in ten take up to 1.5 s to exit when asked to stop,
as a job writing a checkpoint does) from every member, a backlog at a time. Meanwhile, from
one seeded RNG (``--seed``): ``--kills`` ``kill -9`` of the server or of a standalone scheduler at
random moments (each restarted after a random pause, the server with or without its own scheduler),
random cancels, a second scheduler started while the first holds the lease, and nodes drained mid-job
and resumed, as an operator does (``gpucommons.store.nodes``, what ``gpuc node drain`` records; written
to the database directly, so a drain happens while the server is down too). Each job records its
real runs in a file of its own (``chaos_check.RECORD_SCRIPT``).

After the queue drains it reads the database (``gpucommons.store`` models) and the records and prints,
per database, jobs lost, jobs run twice, GPU double holds, charge mismatches and starts on drained
nodes (``chaos_check``), with totals, evidence for every non-zero column, the command line and the
seed. It exits 1 if any column is not 0 (or a submission was refused), 3 if the harness itself could
not run (the service did not come up); the work directory (logs with ``actions.log``, the records and
the home) and the PostgreSQL database are kept when something is off.

    .venv/bin/python benchmarks/chaos.py --quick                    # CI: 300 jobs, 4 kills
    .venv/bin/python benchmarks/chaos.py --jobs 10000 --kills 20 --seed 7
    .venv/bin/python benchmarks/chaos.py --db postgres postgresql+psycopg://postgres@127.0.0.1:55432/x

On two cores it gets through about 7 jobs a second: ``--quick`` takes under a minute per database,
10,000 jobs about 25 minutes.

``--db sqlite`` or ``--db postgres URL`` (repeatable; default: SQLite, and PostgreSQL too when
``GPUC_TEST_POSTGRES_URL`` is set). On PostgreSQL the harness creates a fresh database on the URL's
server and drops it afterwards. ``--summary-json FILE`` writes the figures for a test to read.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import Engine, make_url

from chaos_check import (
    COLUMNS,
    RECORD_SCRIPT,
    Drain,
    Findings,
    Harness,
    JobFacts,
    check,
    drains_mid_job,
    read_jobs,
    read_runs,
    timing,
)
from chaos_service import Proc, Service, kill_job_processes, live_job_processes
from gpucommons.cli.credentials import load_credentials
from gpucommons.client import GpucClient
from gpucommons.clusterfile import load_cluster
from gpucommons.domain.cluster import Cluster
from gpucommons.store.base import make_engine, normalize_url, session_factory
from gpucommons.store.jobs import JobRow
from gpucommons.store.nodes import drain_node, resume_node

POSTGRES_ENV = "GPUC_TEST_POSTGRES_URL"
QUICK = {"jobs": 300, "kills": 4}
NODE_GPUS = 4
GPU_WEIGHTS = {1: 40, 2: 25, 3: 8, 4: 15, 6: 6, 8: 6}
PRICE_H100 = 360_000  # won per GPU-hour: 100 won a GPU-second, so a second's error shows in won
PRICE_A100 = 180_000
SUBMIT_RETRY_S = 180.0


@dataclass(frozen=True)
class Options:
    jobs: int
    kills: int
    seed: int
    gpus: int
    clients: int
    backlog: int
    settle_timeout_s: float
    interval_s: float
    keep: bool
    job_uids: str = ""  # GPUC_JOB_UIDS of the service; empty: its default range


@dataclass(frozen=True)
class Database:
    kind: str  # "sqlite" or "postgres"
    url: str = ""  # the PostgreSQL server (a fresh database is created there)


@dataclass(frozen=True)
class Member:
    project: str
    token: str


@dataclass(frozen=True)
class JobSpec:
    key: str
    member: Member
    gpus: int
    sleep_s: float
    stop_s: float  # how long it takes to exit once asked to stop


@dataclass
class Tally:
    """What the harness did, shared by its threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    submitted: dict[str, int] = field(default_factory=dict)  # idempotency key -> job id
    tokens: dict[int, str] = field(default_factory=dict)  # job id -> its submitter's token
    cancel_asked: set[int] = field(default_factory=set)
    cancels: int = 0
    kills_server: int = 0
    kills_scheduler: int = 0
    second_schedulers: int = 0
    drains: list[Drain] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class Result:
    database: str
    counts: dict[str, int]
    totals: dict[str, float]
    evidence: list[str]
    work: str


# -- setup ------------------------------------------------------------------------------------------


def cluster_toml(gpus: int) -> tuple[str, list[str], dict[str, int]]:
    """A local cluster of ``gpus`` GPUs in 4-GPU nodes, H100 and A100 pools; its TOML, node names and
    GPUs per model."""
    nodes = gpus // NODE_GPUS
    h100 = max(1, nodes // 2)
    pools = {"H100": h100, "A100": nodes - h100}
    text = 'name = "chaos"\n[[sites]]\nname = "local"\nregion = "non-capital"\n'
    names = []
    for model, count in pools.items():
        pool = model.lower()
        text += (
            f'[[pools]]\nname = "{pool}"\nsite = "local"\nmodel = "{model}"\n'
            f"nodes = {count}\ngpus_per_node = {NODE_GPUS}\n"
        )
        names += [f"{pool}-{i + 1}" for i in range(count)]
    return text, names, {m: c * NODE_GPUS for m, c in pools.items()}


def setup_tenants(admin: GpucClient, per_model: dict[str, int]) -> list[Member]:
    """Institutions, projects, members, two programs and active awards, through the API. Two projects
    per model: one guaranteed half or a quarter of the pool, the other a budget only (it borrows, and is
    preempted when a guarantee is reclaimed)."""
    h100, a100 = per_model["H100"], per_model["A100"]
    discounts = {"university": 0.5, "startup": 0.3}
    programs = {
        "H100": admin.create_program(
            name="chaos-h100", model="H100", capacity_gpus=h100, unit_gpus=2, duration_days=30,
            price_krw_per_gpu_hour=PRICE_H100, discounts=discounts, youth_startup_extra_discount=0.5,
        ),
        "A100": admin.create_program(
            name="chaos-a100", model="A100", capacity_gpus=a100, unit_gpus=2, duration_days=30,
            price_krw_per_gpu_hour=PRICE_A100, discounts=discounts,
        ),
    }  # fmt: skip
    tenants = [  # project, kind, youth, model, guaranteed GPUs
        ("univ", "university", False, "H100", h100 // 4 * 2),
        ("youth", "startup", True, "H100", 0),
        ("lab", "research_institute", False, "A100", a100 // 4 * 2),
        ("sme", "sme", False, "A100", 0),
    ]
    members = []
    for name, kind, youth, model, guaranteed in tenants:
        institution = admin.create_institution(f"chaos {name}", kind, "non_capital", youth)
        project = admin.create_project(f"chaos-{name}", institution.id)
        for i in range(2):
            user = admin.create_user(f"chaos-{name}-{i}")
            admin.add_member(project.id, user.id, "pi" if i == 0 else "member")
            members.append(Member(project.name, admin.create_token(user_id=user.id, label="chaos").token))
        award = admin.create_award(
            project_id=project.id,
            program_id=programs[model].id,
            gpu_hours_budget=100_000.0,
            guaranteed_gpus=guaranteed,
        )
        admin.activate_award(award.id)
    return members


def plan_jobs(rng: random.Random, members: list[Member], count: int, max_gpus: int) -> list[JobSpec]:
    sizes = [g for g in GPU_WEIGHTS if g <= max_gpus]
    weights = [GPU_WEIGHTS[g] for g in sizes]
    specs = []
    for i in range(count):
        roll = rng.random()
        if roll < 0.80:
            sleep_s = rng.choice((0.0, 0.01, 0.02, 0.05, 0.08))
        elif roll < 0.95:
            sleep_s = round(rng.uniform(0.2, 1.0), 2)
        else:
            sleep_s = round(rng.uniform(2.0, 5.0), 2)
        stop_s = round(rng.uniform(0.2, 1.5), 2) if rng.random() < 0.3 else 0.0
        gpus = rng.choices(sizes, weights)[0]
        specs.append(JobSpec(f"chaos-{i}", rng.choice(members), gpus, sleep_s, stop_s))
    return specs


# -- the databases ------------------------------------------------------------------------------------


@dataclass
class FreshDatabase:
    """An empty database for one run; ``keep`` (set when the run found something) keeps it."""

    url: str
    keep: bool = False


@contextmanager
def fresh_database(db: Database, home: Path, keep: bool) -> Iterator[FreshDatabase]:
    """An empty database: a SQLite file in the home, or a new PostgreSQL database on the server of
    ``db.url``, dropped afterwards unless ``keep`` or the run sets ``FreshDatabase.keep``."""
    if db.kind == "sqlite":
        yield FreshDatabase(f"sqlite:///{home / 'gpuc.db'}", keep)
        return
    import psycopg

    base = make_url(normalize_url(db.url))
    dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"gpuc_chaos_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    fresh = FreshDatabase(base.set(database=name).render_as_string(hide_password=False), keep)
    try:
        yield fresh
    finally:
        if not fresh.keep:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def active_jobs(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(JobRow).where(JobRow.state.in_(("pending", "running")))
            ).scalar_one()
        )


# -- submitting and cancelling --------------------------------------------------------------------------


class Submitter:
    """Submits the planned jobs from ``clients`` threads, keeping at most ``backlog`` jobs pending or
    running, and retrying each submission with its idempotency key while the server is down (so a
    retried submission is never a second job)."""

    def __init__(self, url: str, specs: list[JobSpec], tally: Tally, engine: Engine, opts: Options) -> None:
        self.url, self.tally, self.engine, self.opts = url, tally, engine, opts
        self.specs = iter(specs)
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.records = ""
        self.threads: list[threading.Thread] = []

    def start(self, records: Path) -> None:
        self.records = str(records)
        self.threads = [
            threading.Thread(target=self._work, name=f"chaos-submit-{i}", daemon=True)
            for i in range(self.opts.clients)
        ]
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join()
        self.done.set()

    def _next(self) -> JobSpec | None:
        with self.lock:
            return next(self.specs, None)

    def _wait_for_room(self) -> None:
        while True:
            try:
                if active_jobs(self.engine) < self.opts.backlog:
                    return
            except Exception as exc:  # a busy database: ask again
                self.tally.errors.append(f"backlog query: {exc}")
            time.sleep(0.1)

    def _work(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while (spec := self._next()) is not None:
                self._wait_for_room()
                job_id = self._submit(http, spec)
                if job_id is not None:
                    with self.tally.lock:
                        self.tally.submitted[spec.key] = job_id
                        self.tally.tokens[job_id] = spec.member.token

    def _submit(self, http: httpx.Client, spec: JobSpec) -> int | None:
        body = {
            "project": spec.member.project,
            "gpus": spec.gpus,
            "command": [
                "sh",
                "-c",
                RECORD_SCRIPT,
                "chaos",
                self.records,
                f"{spec.sleep_s:g}",
                f"{spec.stop_s:g}",
            ],
            "time_limit": "10m",
            "idempotency_key": spec.key,
        }
        headers = {"Authorization": f"Bearer {spec.member.token}"}
        deadline = time.monotonic() + SUBMIT_RETRY_S
        while time.monotonic() < deadline:
            try:
                response = http.post("/jobs", json=body, headers=headers)
            except httpx.TransportError:
                time.sleep(0.2)  # the server is down (killed): retry with the same key
                continue
            if response.status_code < 300:
                return int(response.json()["id"])
            if response.status_code < 500:
                self.tally.errors.append(f"submit {spec.key}: {response.status_code} {response.text[:200]}")
                return None
            time.sleep(0.2)
        self.tally.errors.append(f"submit {spec.key}: no answer within {SUBMIT_RETRY_S:.0f} s")
        return None


def cancel(url: str, tally: Tally, job_id: int) -> None:
    """Ask to cancel ``job_id`` once; whatever the answer, the job counts as asked (a request lost with
    a killed server may still have been stored)."""
    with tally.lock:
        tally.cancel_asked.add(job_id)
        tally.cancels += 1
        token = tally.tokens[job_id]
    with suppress(httpx.HTTPError):
        httpx.post(f"{url}/jobs/{job_id}/cancel", headers={"Authorization": f"Bearer {token}"}, timeout=10)


# -- chaos ------------------------------------------------------------------------------------------------


class Chaos:
    """The chaos actions, drawn from one seeded RNG: kills and rival schedulers at planned submission
    counts, and at every other turn maybe a few cancels or a node drained or brought back."""

    def __init__(
        self,
        svc: Service,
        rng: random.Random,
        tally: Tally,
        nodes: list[str],
        cluster: Cluster,
        opts: Options,
    ) -> None:
        self.svc, self.rng, self.tally, self.nodes, self.cluster = svc, rng, tally, nodes, cluster
        self.opts = opts
        targets = ["server", "scheduler"] * (opts.kills // 2 + 1)
        rng.shuffle(targets)
        rivals = max(1, opts.kills // 2)
        span = range(1, max(opts.jobs, opts.kills + rivals + 1))
        points = rng.sample(span, opts.kills + rivals)
        self.plan = sorted(
            [(p, "kill") for p in points[: opts.kills]] + [(p, "rival") for p in points[opts.kills :]]
        )
        self.targets = targets[: opts.kills]
        self.drained: dict[str, float] = {}

    def pause(self, low: float, high: float) -> None:
        time.sleep(self.rng.uniform(low, high))  # a random pause, as chaos

    def run(self, submitter: Submitter) -> None:
        while not submitter.done.is_set() or self.plan:
            self.pause(0.2, 1.0)
            with self.tally.lock:
                submitted = len(self.tally.submitted)
            if self.plan and submitted >= self.plan[0][0]:
                _, action = self.plan.pop(0)
                self.pause(0.0, 1.0)
                if action == "kill":
                    self.kill(self.targets.pop(0))
                else:
                    self.second_scheduler()
                continue
            roll = self.rng.random()
            if roll < 0.3:
                self.cancels()
            elif roll < 0.5:
                self.toggle_drain()
            if submitter.done.is_set() and self.plan and not self._any_active():
                self.plan.clear()  # nothing left to act on: the remaining plan is dropped

    def _any_active(self) -> bool:
        return active_jobs(self.svc.engine) > 0

    def kill(self, target: str) -> None:
        if target == "scheduler":
            self._kill_scheduler()
        else:
            self._kill_server()

    def _kill_server(self) -> None:
        assert self.svc.server is not None
        self.svc.kill9(self.svc.server)
        self.tally.kills_server += 1
        self.pause(0.0, 1.5)
        self.svc.start_server(scheduler=self.rng.random() < 0.3)
        self._keep_one_scheduler()

    def _kill_scheduler(self) -> None:
        if not self.svc.schedulers:  # make the topology one with a standalone scheduler first
            self.svc.start_scheduler()
            self._wait_lease()
        victim = self.svc.lease_holder()
        if victim is None or victim not in self.svc.schedulers:
            victim = self.rng.choice(self.svc.schedulers)
        self.svc.kill9(victim)
        self.tally.kills_scheduler += 1
        self.pause(0.0, 1.5)
        self._keep_one_scheduler()

    def _keep_one_scheduler(self) -> None:
        if not self.svc.scheduling():
            self.svc.start_scheduler()

    def _wait_lease(self, timeout_s: float = 30.0) -> Proc | None:
        """Wait until some process holds the lease (polling the database with a deadline). The default
        outlasts the engine's lease (15 s plus a backend call): a lease a killed holder kept must
        expire before a live scheduler can take it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            holder = self.svc.lease_holder()
            if holder is not None:
                return holder
            time.sleep(0.2)
        return None

    def second_scheduler(self) -> None:
        """Start another scheduler while one holds the lease (at most two standalone at once)."""
        if len(self.svc.schedulers) >= 2:
            self.svc.kill9(self.rng.choice(self.svc.schedulers))  # make room: an extra kill -9
            self.tally.kills_scheduler += 1
        if self._wait_lease() is None:
            self.tally.errors.append("no scheduler held the lease when a rival was to be started")
            return
        holder = self.svc.lease_holder()
        who = f"{holder.role} pid {holder.pid}" if holder is not None else "a process"
        self.svc.note(f"rival scheduler while {who} holds the lease")
        self.svc.start_scheduler()
        self.tally.second_schedulers += 1

    def cancels(self) -> None:
        with self.tally.lock:
            ids = sorted(self.tally.submitted.values())
        for job_id in self.rng.sample(ids[-50:], min(len(ids[-50:]), self.rng.randint(1, 3))):
            self.svc.note(f"cancel job {job_id}")
            cancel(self.svc.url, self.tally, job_id)

    def toggle_drain(self) -> None:
        """Take a node out of service (one at a time), or bring the drained one back."""
        if self.drained:
            node, on_s = next(iter(self.drained.items()))
            off_s = time.time()
            self.drained.clear()
            self.svc.note(f"node {node} back in service")
            with session_factory(self.svc.engine)() as session:
                resume_node(session, self.cluster, node)
                session.commit()
            self.tally.drains.append(Drain(node, on_s, off_s))
            return
        node = self.rng.choice(self.nodes)
        with session_factory(self.svc.engine)() as session:
            drain_node(session, self.cluster, node, "chaos", None, datetime.now(UTC))
            session.commit()
        self.drained[node] = time.time()
        self.svc.note(f"node {node} out of service")

    def heal(self) -> None:
        """Every node back in service, a server and exactly one scheduler running."""
        if self.drained:
            self.toggle_drain()
        if self.svc.server is None:
            self.svc.start_server(scheduler=False)
        self._keep_one_scheduler()


# -- one run ----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_settled(engine: Engine, timeout_s: float) -> bool:
    """Wait until no job is pending or running (polling the database with a deadline)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if active_jobs(engine) == 0:
            return True
        time.sleep(0.5)
    return False


def service_env(work: Path, database_url: str, opts: Options) -> dict[str, str]:
    """The service's environment: its home, database and cluster in ``work``, and a
    temporary directory there too, so the jobs' own directories go away with the work directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUC_")}
    tmp = work / "tmp"
    tmp.mkdir(mode=0o711, exist_ok=True)
    env.update(
        TMPDIR=str(tmp),
        GPUC_HOME=str(work / "home"),
        GPUC_DATABASE_URL=database_url,
        GPUC_CLUSTER=str(work / "cluster.toml"),
        GPUC_SCHEDULER_INTERVAL_S=f"{opts.interval_s:g}",
        **({"GPUC_JOB_UIDS": opts.job_uids} if opts.job_uids else {}),
    )
    return env


def run_once(db: Database, opts: Options) -> Result:
    work = Path(tempfile.mkdtemp(prefix=f"gpuc-chaos-{db.kind}-"))
    work.chmod(0o711)  # jobs run under uids of their own: they must reach the records directory
    records, logs, home = work / "records", work / "logs", work / "home"
    records.mkdir(mode=0o1733)
    records.chmod(0o1733)  # each job may add its own file, none may list or read another's
    logs.mkdir()
    cluster_text, nodes, per_model = cluster_toml(opts.gpus)
    cluster = work / "cluster.toml"
    cluster.write_text(cluster_text)
    rng = random.Random(opts.seed)
    tally = Tally()
    started = time.monotonic()
    with fresh_database(db, home, opts.keep) as fresh:
        database_url = fresh.url
        engine = make_engine(database_url)
        svc = Service(home, free_port(), service_env(work, database_url, opts), logs, engine)
        try:
            svc.up()
            creds = load_credentials(home)
            assert creds is not None
            admin = GpucClient(svc.url, creds.token)
            members = setup_tenants(admin, per_model)
            specs = plan_jobs(rng, members, opts.jobs, min(8, *per_model.values()))
            submitter = Submitter(svc.url, specs, tally, engine, opts)
            submitter.start(records)
            chaos = Chaos(svc, rng, tally, nodes, load_cluster(str(cluster)), opts)
            joiner = threading.Thread(target=submitter.join, name="chaos-join", daemon=True)
            joiner.start()
            chaos.run(submitter)
            joiner.join()
            chaos.heal()
            settled = wait_settled(engine, opts.settle_timeout_s)
            if not settled:
                tally.errors.append(f"jobs still active {opts.settle_timeout_s:.0f} s after the chaos ended")
        finally:
            svc.stop()
            leftovers = live_job_processes(home)
            kill_job_processes(leftovers)
        wall_s = time.monotonic() - started
        with session_factory(engine)() as session:
            jobs, ledger = read_jobs(session)
        engine.dispose()
        runs = read_runs(records)
        harness = Harness(
            frozenset(tally.submitted.values()), frozenset(tally.cancel_asked), tuple(tally.drains)
        )
        found = check(jobs, runs, harness, ledger)
        for job_id, pid in leftovers:
            found.lost.setdefault(job_id, f"its process {pid} was still running after the service stopped")
        result = summarize(db, found, tally, jobs, wall_s, work)
        result.totals["drains_mid_job"] = drains_mid_job(runs, tally.drains)
        result.totals["killed_while_stopping"] = sum(1 for r in runs if r.how == "term")
        result.totals.update(timing(jobs, runs))
        clean = not any(result.counts.values()) and not tally.errors
        fresh.keep = fresh.keep or not clean
        if not clean and db.kind == "postgres":
            shown = make_url(database_url).render_as_string(hide_password=True)
            result.evidence.append(f"kept the database {shown}")
    if clean and not opts.keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


def summarize(
    db: Database, found: Findings, tally: Tally, jobs: dict[int, JobFacts], wall_s: float, work: Path
) -> Result:
    states: dict[str, int] = {}
    for job in jobs.values():
        states[job.state] = states.get(job.state, 0) + 1
    totals: dict[str, float] = {
        "jobs": len(jobs),
        "submitted": len(tally.submitted),
        "runs": found.runs,
        "runs_without_end": found.runs_without_end,
        "restarts": sum(j.restarts for j in jobs.values()),
        "kills_server": tally.kills_server,
        "kills_scheduler": tally.kills_scheduler,
        "second_schedulers": tally.second_schedulers,
        "cancels": tally.cancels,
        "drains": len(tally.drains),
        "failed_with_reason": len(found.failed_with_reason),
        "wall_s": round(wall_s, 1),
        **{f"state_{k}": v for k, v in sorted(states.items())},
    }
    evidence = found.evidence()
    evidence += [f"failed with a reason: job {k}: {v}" for k, v in list(found.failed_with_reason.items())[:5]]
    evidence += [f"harness: {e}" for e in tally.errors[:10]]
    return Result(db.kind, found.counts(), totals, evidence, str(work))


# -- output and entry point ---------------------------------------------------------------------------------


def print_table(results: list[Result]) -> None:
    head = ["database", *COLUMNS, "jobs", "runs", "kills", "cancels", "2nd sched", "drains", "wall s"]
    rows = []
    for r in results:
        t = r.totals
        kills = f"{int(t['kills_server'])}+{int(t['kills_scheduler'])}"
        rows.append(
            [r.database, *(str(r.counts[c]) for c in COLUMNS), str(int(t["jobs"])), str(int(t["runs"])),
             kills, str(int(t["cancels"])), str(int(t["second_schedulers"])), str(int(t["drains"])),
             f"{t['wall_s']:.0f}"]
        )  # fmt: skip
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    print("(kills: server + standalone scheduler; the goal is 0 in every column from lost to drained_starts)")
    for r in results:
        extra = {
            k: v
            for k, v in r.totals.items()
            if k.startswith("state_")
            or k in ("restarts", "runs_without_end", "drains_mid_job", "killed_while_stopping")
            or k.startswith(("launch_lag", "stop_overrun"))
        }
        print(f"{r.database}: {json.dumps(extra)}")
        for line in r.evidence:
            print(f"{r.database}: {line}")
        if any(r.counts.values()) or any(line.startswith("harness:") for line in r.evidence):
            print(f"{r.database}: kept the logs, records and home in {r.work}")


def parse_args(argv: list[str]) -> tuple[Options, list[Database], Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs to submit (default 10000)")
    parser.add_argument("--kills", type=int, default=20, help="kill -9 of the server or a scheduler")
    parser.add_argument("--seed", type=int, default=1, help="seed of every random choice")
    parser.add_argument("--gpus", type=int, default=24, help="GPUs of the local cluster (4-GPU nodes)")
    parser.add_argument("--quick", action="store_true", help=f"the CI preset: {QUICK}")
    parser.add_argument(
        "--db", nargs="+", action="append", metavar=("KIND", "URL"),
        help="sqlite, or postgres URL (default: sqlite, and postgres on GPUC_TEST_POSTGRES_URL if set)",
    )  # fmt: skip
    parser.add_argument("--clients", type=int, default=2, help="submitting threads")
    parser.add_argument(
        "--backlog", type=int, default=0, help="most jobs pending or running (default 4 x GPUs)"
    )
    parser.add_argument("--settle-timeout", type=float, default=600.0, help="seconds to wait for the drain")
    parser.add_argument("--interval", type=float, default=0.3, help="scheduler interval in seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work directory and database")
    parser.add_argument("--summary-json", type=Path, default=None, help="write the figures here")
    parser.add_argument(
        "--job-uids",
        default="",
        metavar="FIRST-LAST",
        help="uids the jobs run as (GPUC_JOB_UIDS); give runs side by side ranges of their own",
    )
    args = parser.parse_args(argv)
    if args.quick:
        given = {a.split("=")[0] for a in argv}
        for name, value in QUICK.items():
            if f"--{name}" not in given:
                setattr(args, name, value)
    if args.gpus < 2 * NODE_GPUS or args.gpus % NODE_GPUS:
        parser.error(f"--gpus must be a multiple of {NODE_GPUS}, at least {2 * NODE_GPUS}")
    if args.jobs < 1 or args.kills < 0 or args.clients < 1:
        parser.error("--jobs and --clients must be at least 1, --kills at least 0")
    databases = []
    for spec in args.db or []:
        if spec[0] == "sqlite" and len(spec) == 1:
            databases.append(Database("sqlite"))
        elif spec[0] == "postgres" and len(spec) <= 2:
            url = spec[1] if len(spec) == 2 else os.environ.get(POSTGRES_ENV, "")
            if not url:
                parser.error(f"--db postgres needs a URL (or {POSTGRES_ENV})")
            databases.append(Database("postgres", url))
        else:
            parser.error(f"--db expects 'sqlite' or 'postgres URL', got {' '.join(spec)!r}")
    if not databases:
        databases.append(Database("sqlite"))
        if os.environ.get(POSTGRES_ENV):
            databases.append(Database("postgres", os.environ[POSTGRES_ENV]))
    opts = Options(
        jobs=args.jobs,
        kills=args.kills,
        seed=args.seed,
        gpus=args.gpus,
        clients=args.clients,
        backlog=args.backlog or 4 * args.gpus,
        settle_timeout_s=args.settle_timeout,
        interval_s=args.interval,
        keep=args.keep,
        job_uids=args.job_uids,
    )
    return opts, databases, args.summary_json


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    opts, databases, summary_path = parse_args(argv)
    print(f"command: {shlex.join([sys.executable, sys.argv[0], *argv])}")
    print(f"seed: {opts.seed}; options: {json.dumps(asdict(opts))}", flush=True)
    results = []
    for db in databases:
        print(f"{db.kind}: running {opts.jobs} jobs with {opts.kills} kills ...", flush=True)
        try:
            results.append(run_once(db, opts))
        except Exception as exc:  # the harness itself could not run: one line, not a traceback
            print(f"{db.kind}: the harness failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 3
    print_table(results)
    if summary_path is not None:
        summary_path.write_text(json.dumps([asdict(r) for r in results], indent=2))
    failed = any(any(r.counts.values()) for r in results)
    harness_errors = any(line.startswith("harness:") for r in results for line in r.evidence)
    return 1 if failed or harness_errors else 0


if __name__ == "__main__":
    sys.exit(main())
