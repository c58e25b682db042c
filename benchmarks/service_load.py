"""Submission throughput of the live service against Slurm's own ``sbatch``, measured in one run.

For each database (SQLite always; PostgreSQL when ``--database-url`` / ``GPUC_BENCH_DATABASE_URL``
names a server, on a fresh database created for the run and dropped after it) the API runs as a
subprocess (uvicorn on ``gpucommons.service.app:app_from_env``: one process on SQLite, whose single
writer gains nothing from more; ``--workers`` on PostgreSQL) on a fresh home and a large generated
cluster, and the real ``LiveEngine`` runs in a second process with an instant backend (every launched
job finishes at the next poll, as ``true`` would), so the figures measure the control plane, not
process start-up. ``--clients`` threads then send ``--jobs`` single ``POST /jobs``, and the same
number of threads send ``--array-tasks`` tasks as ``POST /arrays`` of ``--array-size`` tasks each.

The baseline is the Slurm test cluster's ``sbatch`` on the same machine in the same run: the same
number of clients, each running ``sbatch --hold --wrap true`` in a loop (held, so nothing has to run;
the benchmark cancels them afterwards), ``--sbatch-jobs`` in all. It needs the cluster's
``SLURM_CONF`` (``--slurm-conf`` or the variable, as ``start-test-cluster.sh`` prints it); without it
sbatch is not measured and the ratios are not printed. The held jobs stay in slurmctld's memory for
its ``MinJobAge`` after their cancel and count toward its ``MaxJobCount`` (10,000 by default), so runs
in quick succession can meet that limit; sbatch then fails and the benchmark says so.

Printed per database: single submissions/s with p50/p99 latency, array tasks/s, the ratios against
sbatch's rate, whether each goal is met, and how the scheduler's backlog went down after the last
submission (placed per second, and the seconds until no job was pending, within ``--drain-s``).
``--no-scheduler`` measures the API alone. Defaults take about 2 minutes on 2 cores.

Goals: single submissions >= 1x sbatch's rate, array tasks >= 10x it, single p99 <= 100 ms, on SQLite
and on PostgreSQL, and every job placed within 10 s of the last submission.

    eval "$(SLURM_TEST_PORT_BASE=7100 ../shared/slurm/start-test-cluster.sh /tmp/slurm-bench)"
    .venv/bin/python benchmarks/service_load.py --database-url "$(scripts/start-postgres.sh /tmp/pg 55432)"

Measured so with the defaults (8 clients; 3,000 singles; 16,000 array tasks in arrays of 1,000;
3,000 sbatch) on 2 cores shared with other work (load average 1.5-7), two runs:

    run  database    singles/s  p50 ms  p99 ms  tasks/s  sbatch/s  singles  tasks  placed/s  pending 30 s on
    1    sqlite            189      32     557   15,373       436    0.43x    35x       266           8,746
    1    postgresql        196      30     135    8,862       436    0.45x    20x       100          15,500
    2    sqlite            185      32     247   10,168       287    0.65x    35x       133          13,500
    2    postgresql        151      35     220    6,327       287    0.53x    22x        67          16,500

    The API alone (--no-scheduler): sqlite 232/s p99 97 ms, postgresql 211/s p99 102 ms (sbatch 245/s).

Met: array tasks >= 10x sbatch. Not met: singles >= 1x (0.4-0.65x), p99 <= 100 ms with the scheduler
running, placement within 10 s: the scheduler places 70-270 jobs/s, below the rate jobs arrive, so the
backlog grows while submissions last. Why, and what the submit path's own cost is: design note 0011,
"Measurements".
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gpucommons.clusterfile import load_cluster
from gpucommons.config import Settings
from gpucommons.engine.live import EngineOptions, LiveEngine
from gpucommons.engine.ports import BackendEvent, LaunchSpec
from gpucommons.policy.registry import build_policy
from gpucommons.service.bootstrap import bootstrap
from gpucommons.store.base import make_engine, session_factory
from gpucommons.store.jobs import JobRow
from gpucommons.store.scheduler_state import DatabaseSchedulerState
from gpucommons.store.scratch import scratch_postgres

JOB = {"project": "demo", "command": ["true"], "gpus": 1, "time_limit": "10m"}
SBATCH_JOB_NAME = "gpuc-bench-sbatch"
SINGLE_GOAL_X = 1.0  # single submissions per second against sbatch's
ARRAY_GOAL_X = 10.0  # array tasks per second against sbatch's
P99_GOAL_MS = 100.0
PLACED_GOAL_S = 10.0  # from the last submission until no job is pending


class InstantBackend:
    """Every job finishes (exit code 0) at the next poll."""

    name = "instant"
    stops_unknown = True
    even_gangs = False

    def __init__(self) -> None:
        self._done: list[int] = []

    def launch(self, spec: LaunchSpec) -> str:
        self._done.append(spec.job_id)
        return f"instant:{spec.job_id}"

    def cancel(self, job_id: int, backend_ref: str) -> None:
        return None

    def poll(self) -> list[BackendEvent]:
        now = time.time()
        done, self._done = self._done, []
        return [BackendEvent(j, "finished", now, f"instant:{j}", 0) for j in done]

    def adopt(self, running: Sequence[tuple[int, str]]) -> list[BackendEvent]:
        return [BackendEvent(j, "finished", time.time(), ref, 0) for j, ref in running]

    def unavailable_nodes(self) -> set[str]:
        return set()


@dataclass(frozen=True)
class Rate:
    """``items`` submitted in ``wall_s`` by ``calls`` calls, and each call's latency in seconds."""

    items: int
    wall_s: float
    latencies_s: Sequence[float]

    @property
    def per_s(self) -> float:
        return self.items / self.wall_s

    def ms(self, quantile: float) -> float:
        ordered = sorted(self.latencies_s)
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))] * 1000


@dataclass(frozen=True)
class DatabaseRun:
    """What one database measured: singles, arrays, and the scheduler's backlog after them."""

    database: str
    workers: int
    singles: Rate
    arrays: Rate
    pending_after_singles: int
    pending_at_last_submission: int
    pending_at_end: int
    waited_s: float  # from the last submission until none was pending, or until the deadline

    @property
    def placed_s(self) -> float | None:
        """Seconds from the last submission until every job was placed; ``None``: not by the deadline."""
        return None if self.pending_at_end else self.waited_s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cluster_file(home: Path, nodes: int) -> Path:
    path = home / "bench-cluster.toml"
    path.write_text(
        'name = "bench"\n[[sites]]\nname = "site"\n'
        f'[[pools]]\nname = "h100"\nsite = "site"\nmodel = "H100"\nnodes = {nodes}\ngpus_per_node = 8\n'
    )
    return path


def _share(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` counts differing by at most one."""
    return [total // parts + (1 if c < total % parts else 0) for c in range(parts)]


def _in_parallel(clients: int, worker: Callable[[int], list[float]]) -> tuple[float, list[float]]:
    """Wall seconds of ``worker(client)`` run by ``clients`` threads at once, and their latencies."""
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(worker, range(clients)))
    return time.perf_counter() - started, [lat for chunk in results for lat in chunk]


@contextmanager
def api(home: Path, cluster_path: Path, database_url: str, workers: int) -> Iterator[tuple[str, str]]:
    """The API on a fresh home with the demo project and award: its URL and an admin token."""
    settings = Settings(home=home, cluster=str(cluster_path), database_url=database_url)
    token = bootstrap(settings, empty=False).token
    port = _free_port()
    env = {
        **os.environ,
        "GPUC_HOME": str(home),
        "GPUC_CLUSTER": str(cluster_path),
        "GPUC_DATABASE_URL": settings.database_url,
    }
    argv = [sys.executable, "-m", "uvicorn", "--factory", "gpucommons.service.app:app_from_env"]
    argv += ["--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    server = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        yield url, token
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # the workers too
        server.wait(10)


def _schedule(database_url: str, cluster_path: str, home: str, stop: Event) -> None:
    """The scheduler loop in its own process, as ``gpuc scheduler`` runs it, so it competes with the
    API for the database, not for this process's interpreter lock with the load generator."""
    cluster = load_cluster(cluster_path)
    engine = LiveEngine(
        DatabaseSchedulerState(session_factory(make_engine(database_url)), cluster),
        InstantBackend(),
        cluster,
        build_policy("quota"),
        EngineOptions(logs_dir=Path(home) / "jobs"),
    )
    engine.run(stop, 0.2)  # type: ignore[arg-type]  # a process Event waits and is set like a thread's


@contextmanager
def scheduler(database_url: str, cluster_path: Path, home: Path) -> Iterator[None]:
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    loop = spawn.Process(
        target=_schedule, args=(database_url, str(cluster_path), str(home), stop), daemon=True
    )
    loop.start()
    try:
        yield
    finally:
        stop.set()
        loop.join(30)
        if loop.is_alive():
            loop.kill()


def submit_singles(url: str, token: str, jobs: int, clients: int) -> Rate:
    """``jobs`` single ``POST /jobs`` from ``clients`` threads."""
    shares = _share(jobs, clients)

    def worker(client: int) -> list[float]:
        latencies = []
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            for i in range(shares[client]):
                body = {**JOB, "idempotency_key": f"single-{client}-{i}"}
                start = time.perf_counter()
                response = http.post("/jobs", json=body)
                latencies.append(time.perf_counter() - start)
                response.raise_for_status()
        return latencies

    wall_s, latencies = _in_parallel(clients, worker)
    return Rate(jobs, wall_s, latencies)


def submit_arrays(url: str, token: str, tasks: int, array_size: int, clients: int) -> Rate:
    """``tasks`` tasks as ``POST /arrays`` of ``array_size`` tasks (the last one smaller), the arrays
    shared among ``clients`` threads."""
    sizes = [array_size] * (tasks // array_size) + ([tasks % array_size] if tasks % array_size else [])
    mine = [sizes[c::clients] for c in range(clients)]

    def worker(client: int) -> list[float]:
        latencies = []
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=600) as http:
            for i, size in enumerate(mine[client]):
                body = {**JOB, "array": f"0-{size - 1}", "idempotency_key": f"array-{client}-{i}"}
                start = time.perf_counter()
                response = http.post("/arrays", json=body)
                latencies.append(time.perf_counter() - start)
                response.raise_for_status()
        return latencies

    wall_s, latencies = _in_parallel(clients, worker)
    return Rate(tasks, wall_s, latencies)


def _count_jobs(sessions: sessionmaker[Session], state: str | None = None) -> int:
    """Jobs stored (``state``: in that state)."""
    with sessions() as s:
        query = select(func.count()).select_from(JobRow)
        if state is not None:
            query = query.where(JobRow.state == state)
        return int(s.scalar(query) or 0)


def measure_database(args: argparse.Namespace, database_url: str | None, workers: int) -> DatabaseRun:
    """Singles, then arrays, with the scheduler running, then the wait until no job is pending."""
    with tempfile.TemporaryDirectory(prefix="gpuc-bench-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir(mode=0o700)
        cluster_path = _cluster_file(Path(tmp), args.nodes)
        url_of_database = database_url or f"sqlite:///{home / 'gpuc.db'}"
        with api(home, cluster_path, url_of_database, workers) as (url, token):
            engine = make_engine(url_of_database)
            sessions = session_factory(engine)
            with nullcontext() if args.no_scheduler else scheduler(url_of_database, cluster_path, home):
                singles = submit_singles(url, token, args.jobs, args.clients)
                pending_after_singles = _count_jobs(sessions, "pending")
                arrays = submit_arrays(url, token, args.array_tasks, args.array_size, args.clients)
                last_submission = time.perf_counter()
                pending_at_last_submission = pending = _count_jobs(sessions, "pending")
                while (
                    pending and not args.no_scheduler and time.perf_counter() < last_submission + args.drain_s
                ):
                    time.sleep(0.1)
                    pending = _count_jobs(sessions, "pending")
                waited_s = time.perf_counter() - last_submission
                stored = _count_jobs(sessions)
            engine.dispose()
            if stored != args.jobs + args.array_tasks:
                raise SystemExit(f"{stored} jobs stored, {args.jobs + args.array_tasks} submitted")
    database = "postgresql" if database_url else "sqlite"
    return DatabaseRun(
        database,
        workers,
        singles,
        arrays,
        pending_after_singles,
        pending_at_last_submission,
        pending,
        waited_s,
    )


def measure_sbatch(slurm_conf: str, jobs: int, clients: int) -> Rate | str:
    """``jobs`` held ``sbatch --wrap true`` from ``clients`` threads each running sbatch in a loop,
    then every one of them cancelled; or why sbatch could not be measured."""
    sbatch, scancel = shutil.which("sbatch"), shutil.which("scancel")
    if sbatch is None or scancel is None:
        return "sbatch not measured: sbatch/scancel are not on PATH"
    env = {**os.environ, "SLURM_CONF": slurm_conf}
    argv = [sbatch, "--hold", "--parsable", "--job-name", SBATCH_JOB_NAME, "--output", "/dev/null"]
    argv += ["--wrap", "true"]
    shares = _share(jobs, clients)
    failures: list[str] = []
    lock = threading.Lock()

    def worker(client: int) -> list[float]:
        latencies = []
        for _ in range(shares[client]):
            start = time.perf_counter()
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            latencies.append(time.perf_counter() - start)
            if done.returncode != 0:
                with lock:
                    failures.append(done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?")
                break
        return latencies

    try:
        wall_s, latencies = _in_parallel(clients, worker)
    finally:
        subprocess.run([scancel, "--name", SBATCH_JOB_NAME], env=env, capture_output=True, check=False)
    if failures:
        return f"sbatch not measured: it failed ({failures[0]}); Slurm's MaxJobCount may be reached"
    return Rate(jobs, wall_s, latencies)


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def report(run: DatabaseRun, sbatch: Rate | str, scheduled: bool) -> None:
    """One database's figures, its ratios against sbatch and which goals it met."""
    singles, arrays = run.singles, run.arrays
    print(f"== {run.database} (API processes: {run.workers})")
    print(
        f"singles: {singles.items} POST /jobs in {singles.wall_s:.1f} s: {singles.per_s:,.0f}/s; "
        f"latency ms p50 {singles.ms(0.5):.1f} p99 {singles.ms(0.99):.1f} max {singles.ms(1.0):.1f}; "
        f"pending after them: {run.pending_after_singles}"
    )
    print(
        f"arrays:  {arrays.items} tasks in {len(arrays.latencies_s)} POST /arrays in {arrays.wall_s:.1f} s: "
        f"{arrays.per_s:,.0f} tasks/s; call latency ms p50 {arrays.ms(0.5):.0f} p99 {arrays.ms(0.99):.0f}"
    )
    p99_met = singles.ms(0.99) <= P99_GOAL_MS
    goals = [f"p99 <= {P99_GOAL_MS:.0f} ms {_verdict(p99_met)}"]
    if scheduled:
        placed = run.pending_at_last_submission - run.pending_at_end
        outcome = "every job placed" if run.placed_s is not None else f"{run.pending_at_end} still pending"
        print(
            f"placed:  {run.pending_at_last_submission} pending at the last submission, {placed} placed "
            f"in the {run.waited_s:.1f} s after it ({placed / max(run.waited_s, 1e-3):,.0f}/s); {outcome}"
        )
        placed_met = run.placed_s is not None and run.placed_s <= PLACED_GOAL_S
        goals.append(f"placed <= {PLACED_GOAL_S:.0f} s {_verdict(placed_met)}")
    else:
        print("placed:  not measured (--no-scheduler)")
    if isinstance(sbatch, Rate):
        single_x, array_x = singles.per_s / sbatch.per_s, arrays.per_s / sbatch.per_s
        print(f"ratios:  singles {single_x:.2f}x sbatch, array tasks {array_x:.1f}x sbatch")
        goals = [
            f"singles >= {SINGLE_GOAL_X:.0f}x {_verdict(single_x >= SINGLE_GOAL_X)}",
            f"arrays >= {ARRAY_GOAL_X:.0f}x {_verdict(array_x >= ARRAY_GOAL_X)}",
            *goals,
        ]
    print("goals:   " + "; ".join(goals))


def count(text: str) -> int:
    """A positive count from the command line (argparse turns the ValueError into a one-line error)."""
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=count, default=3_000, help="single submissions per database")
    parser.add_argument("--array-tasks", type=count, default=16_000, help="array tasks per database")
    parser.add_argument("--array-size", type=count, default=1_000, help="tasks per POST /arrays")
    parser.add_argument("--sbatch-jobs", type=count, default=3_000, help="sbatch submissions")
    parser.add_argument("--clients", type=count, default=8, help="concurrent clients, for each kind")
    parser.add_argument("--nodes", type=count, default=1_250, help="8-GPU nodes in the generated cluster")
    parser.add_argument("--database-url", default=os.environ.get("GPUC_BENCH_DATABASE_URL", ""))
    parser.add_argument("--workers", type=count, default=2, help="API processes on PostgreSQL (cores)")
    parser.add_argument("--slurm-conf", default=os.environ.get("SLURM_CONF", ""), help="'': no sbatch")
    parser.add_argument("--no-scheduler", action="store_true", help="the API alone: nothing is placed")
    parser.add_argument("--drain-s", type=float, default=30.0, help="longest wait for placement, s")
    args = parser.parse_args()

    print(
        f"clients: {args.clients}; GPUs: {args.nodes * 8}; cores: {os.cpu_count()}; "
        f"load average: {os.getloadavg()[0]:.2f}"
    )
    sbatch: Rate | str = "sbatch not measured: give --slurm-conf or SLURM_CONF of a Slurm cluster"
    if args.slurm_conf:
        sbatch = measure_sbatch(args.slurm_conf, args.sbatch_jobs, args.clients)
    if isinstance(sbatch, Rate):
        print(
            f"== sbatch: {sbatch.items} held sbatch --wrap true in {sbatch.wall_s:.1f} s: "
            f"{sbatch.per_s:,.0f}/s; latency ms p50 {sbatch.ms(0.5):.1f} p99 {sbatch.ms(0.99):.1f}"
        )
    else:
        print(f"== {sbatch}")
    report(measure_database(args, None, 1), sbatch, not args.no_scheduler)
    if args.database_url:
        with scratch_postgres(args.database_url, "gpuc_bench_") as database_url:
            report(measure_database(args, database_url, args.workers), sbatch, not args.no_scheduler)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
