"""Submission throughput and latency of the live service, with the scheduler keeping up.

Starts the API (uvicorn on ``gpucommons.service.app:app_from_env``, ``--workers`` processes: one on
SQLite, whose single writer gains nothing from more, several on PostgreSQL) as a subprocess on a fresh
home (SQLite by default, or the PostgreSQL URL given by ``--database-url`` /
``GPUC_BENCH_DATABASE_URL``), on a large generated cluster, and runs the real ``LiveEngine`` in a second
process with an instant backend (every launched job finishes at the next poll, as ``true`` would), so
the figures measure the control plane, not process start-up.
Prints submissions per second, p50/p99 latency, and how many jobs the scheduler started meanwhile.

    .venv/bin/python benchmarks/service_load.py --jobs 10000 --clients 8
    GPUC_BENCH_DATABASE_URL=postgresql://u:pw@host/db .venv/bin/python benchmarks/service_load.py --workers 2

Goals: >= 300 submissions/s on SQLite, >= 1,000/s on PostgreSQL.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.synchronize import Event
from pathlib import Path

import httpx
from sqlalchemy import func, select

from gpucommons.clusterfile import load_cluster
from gpucommons.config import Settings
from gpucommons.engine.live import EngineOptions, LiveEngine
from gpucommons.engine.ports import BackendEvent, LaunchSpec
from gpucommons.policy.registry import build_policy
from gpucommons.service.bootstrap import bootstrap
from gpucommons.store.base import make_engine, session_factory
from gpucommons.store.jobs import JobRow
from gpucommons.store.scheduler_state import DatabaseSchedulerState


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


def _submit_all(url: str, token: str, jobs: int, clients: int) -> list[float]:
    def worker(count: int, offset: int) -> list[float]:
        latencies = []
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            for i in range(count):
                body = {
                    "project": "demo",
                    "command": ["true"],
                    "gpus": 1,
                    "time_limit": "10m",
                    "idempotency_key": f"bench-{offset + i}",
                }
                start = time.perf_counter()
                response = http.post("/jobs", json=body)
                latencies.append(time.perf_counter() - start)
                response.raise_for_status()
        return latencies

    share = [jobs // clients + (1 if c < jobs % clients else 0) for c in range(clients)]
    offsets = [sum(share[:c]) for c in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        results = pool.map(worker, share, offsets)
    return [lat for chunk in results for lat in chunk]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--nodes", type=int, default=1_250, help="8-GPU nodes in the generated cluster")
    parser.add_argument("--database-url", default=os.environ.get("GPUC_BENCH_DATABASE_URL", ""))
    parser.add_argument("--drain-s", type=float, default=120.0, help="how long to let the scheduler catch up")
    parser.add_argument("--no-scheduler", action="store_true", help="measure the API alone")
    parser.add_argument("--workers", type=int, default=1, help="API server processes (PostgreSQL: cores)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="gpuc-bench-"))
    cluster_path = _cluster_file(home, args.nodes)
    env_settings = {"home": home, "cluster": str(cluster_path)}
    if args.database_url:
        env_settings["database_url"] = args.database_url
    settings = Settings(**env_settings)  # type: ignore[arg-type]
    token = bootstrap(settings, empty=False)
    port = _free_port()
    env = {
        **os.environ,
        "GPUC_HOME": str(home),
        "GPUC_CLUSTER": str(cluster_path),
        "GPUC_DATABASE_URL": settings.database_url,
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "gpucommons.service.app:app_from_env",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        sessions = session_factory(make_engine(settings.database_url))
        spawn = multiprocessing.get_context("spawn")
        stop = spawn.Event()
        loop = spawn.Process(
            target=_schedule, args=(settings.database_url, str(cluster_path), str(home), stop), daemon=True
        )
        if not args.no_scheduler:
            loop.start()
        started = time.perf_counter()
        latencies = sorted(_submit_all(url, token, args.jobs, args.clients))
        submit_s = time.perf_counter() - started

        def scheduled() -> int:
            with sessions() as s:
                return int(
                    s.scalar(select(func.count()).select_from(JobRow).where(JobRow.state != "pending")) or 0
                )

        at_end_of_submission = scheduled()
        deadline = time.perf_counter() + args.drain_s
        while not args.no_scheduler and scheduled() < args.jobs and time.perf_counter() < deadline:
            time.sleep(0.5)
        drained_s = time.perf_counter() - started
        stop.set()
        if loop.is_alive():
            loop.join(10)
        database = "postgresql" if settings.database_url.startswith("postgres") else "sqlite"

        def p(q: float) -> float:
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

        print(
            f"database: {database}; jobs: {args.jobs}; clients: {args.clients}; workers: {args.workers}; "
            f"GPUs: {args.nodes * 8}; load average: {os.getloadavg()[0]:.2f}"
        )
        print(f"submissions/s: {args.jobs / submit_s:.0f} ({submit_s:.1f} s)")
        print(f"latency ms: p50 {p(0.5):.1f}  p99 {p(0.99):.1f}  max {latencies[-1] * 1000:.1f}")
        print(
            f"scheduled by the end of submission: {at_end_of_submission}; "
            f"all {scheduled()} scheduled after {drained_s:.1f} s"
        )
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # the workers too
        server.wait(10)


if __name__ == "__main__":
    main()
