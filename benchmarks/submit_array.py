"""Submitting N jobs one ``POST /jobs`` at a time against one ``POST /arrays`` of N tasks.

Starts the API (uvicorn on ``gpucommons.service.app:app_from_env``, no scheduler, so the figures are
the submission path alone) as a subprocess on a fresh home: SQLite by default, or a fresh database on
the PostgreSQL server of ``--database-url`` / ``GPUC_BENCH_DATABASE_URL`` (created for the run and
dropped after it). Sends ``--singles`` single submissions from ``--clients`` threads, then one array
of ``--tasks`` tasks, each through real HTTP, and prints submissions per second of both, the singles'
p50/p99 latency, the array call's time, and the ratio of the two rates (design note 0011).

    .venv/bin/python benchmarks/submit_array.py --tasks 10000 --singles 2000
    .venv/bin/python benchmarks/submit_array.py --database-url postgresql+psycopg://postgres@127.0.0.1:55432/x
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

from gpucommons.config import Settings
from gpucommons.service.bootstrap import bootstrap
from gpucommons.store.base import normalize_url

JOB = {"project": "demo", "command": ["true"], "gpus": 1, "time_limit": "10m"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def fresh_postgres(server_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``server_url``, dropped afterwards."""
    name = f"gpuc_bench_{uuid.uuid4().hex[:10]}"
    base = make_url(normalize_url(server_url))
    dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def sqlite_in(home: Path) -> Iterator[str]:
    """The SQLite database of a fresh home (created when the API is bootstrapped)."""
    yield f"sqlite:///{home / 'home' / 'gpuc.db'}"


@contextmanager
def api(home: Path, database_url: str) -> Iterator[tuple[str, str]]:
    """The API on a fresh home with the demo project and award: its URL and an admin token."""
    settings = Settings(home=home, database_url=database_url)
    token = bootstrap(settings, empty=False).token
    port = free_port()
    env = {**os.environ, "GPUC_HOME": str(home), "GPUC_DATABASE_URL": settings.database_url}
    argv = [sys.executable, "-m", "uvicorn", "--factory", "gpucommons.service.app:app_from_env"]
    argv += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    server = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url, token
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(10)


def singles(url: str, token: str, jobs: int, clients: int) -> tuple[float, list[float]]:
    """Wall seconds for ``jobs`` single submissions from ``clients`` threads, and each one's latency."""

    def worker(count: int, offset: int) -> list[float]:
        latencies = []
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            for i in range(count):
                start = time.perf_counter()
                response = http.post("/jobs", json={**JOB, "idempotency_key": f"single-{offset + i}"})
                latencies.append(time.perf_counter() - start)
                response.raise_for_status()
        return latencies

    share = [jobs // clients + (1 if c < jobs % clients else 0) for c in range(clients)]
    offsets = [sum(share[:c]) for c in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(worker, share, offsets))
    return time.perf_counter() - started, sorted(lat for chunk in results for lat in chunk)


def one_array(url: str, token: str, tasks: int) -> float:
    """Wall seconds of one array call of ``tasks`` tasks."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=600) as http:
        start = time.perf_counter()
        response = http.post("/arrays", json={**JOB, "array": f"0-{tasks - 1}", "idempotency_key": "array"})
        took = time.perf_counter() - start
        response.raise_for_status()
        assert response.json()["states"] == {"pending": tasks}, response.text
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks of the one array")
    parser.add_argument("--singles", type=int, default=2_000, help="single submissions")
    parser.add_argument("--clients", type=int, default=4, help="threads sending the singles")
    parser.add_argument("--database-url", default=os.environ.get("GPUC_BENCH_DATABASE_URL", ""))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gpuc-bench-") as tmp:
        home = Path(tmp)
        with (
            fresh_postgres(args.database_url) if args.database_url else sqlite_in(home) as database_url,
            api(home / "home", database_url) as (url, token),
        ):
            single_s, latencies = singles(url, token, args.singles, args.clients)
            array_s = one_array(url, token, args.tasks)

    def ms(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000

    single_rate, array_rate = args.singles / single_s, args.tasks / array_s
    database = "postgresql" if args.database_url else "sqlite"
    print(f"database: {database}; load average: {os.getloadavg()[0]:.2f}")
    print(
        f"singles: {args.singles} POST /jobs from {args.clients} clients in {single_s:.2f} s: "
        f"{single_rate:,.0f} submissions/s; latency ms p50 {ms(0.5):.1f} p99 {ms(0.99):.1f}"
    )
    print(f"array:   1 POST /arrays of {args.tasks} tasks in {array_s:.3f} s: {array_rate:,.0f} tasks/s")
    print(f"ratio:   the array submits {array_rate / single_rate:,.1f}x as many jobs per second")


if __name__ == "__main__":
    main()
