"""How fast the commons runs a job array of tasks that do nothing: the control plane's rate, end to end.

It builds a fresh commons on SQLite (the service's app, its live engine on its own thread as ``gpuc up``
runs it, and the local backend starting real processes), on a generated single-site cluster with
enough 8-GPU nodes for ``--limit`` tasks at once, and one project whose award pays for them. Then it
submits one array of ``--tasks`` tasks ``%--limit`` in one ``POST /arrays``, each running ``true``,
and waits until every task has finished. It prints the submission's time, the run's wall time and
tasks per second, and the CPU each task cost the server (its process, every thread: API, engine,
backend) and the task's own processes (the wrapper that claims and watches the launch, and the
command), in milliseconds per task.

``--baseline-src PATH`` runs the same array twice, each in a process of its own: first with the
package at ``PATH`` (a ``src/`` holding the code before a change, e.g. extracted with ``git archive``),
then with this checkout's, and prints both side by side.

    .venv/bin/python benchmarks/array_throughput.py
    .venv/bin/python benchmarks/array_throughput.py --tasks 10000 --limit 64
    .venv/bin/python benchmarks/array_throughput.py --tasks 1000 --baseline-src /tmp/base/src

The machine's other load counts: on a shared machine compare figures measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette's note on its test client's transport
    from fastapi.testclient import TestClient

from gpucommons.config import Settings
from gpucommons.service.app import create_app
from gpucommons.service.scheduler import start_in_background
from gpucommons.store import awards as award_repo
from gpucommons.store.calls import create_program
from gpucommons.store.tenancy import (
    create_institution,
    create_project,
    create_token,
    create_user,
    set_membership,
)

GPUS_PER_NODE = 8
POLL_S = 0.2  # how often the run's end is looked for (a benchmark may poll; its figures allow for it)


def cluster_toml(limit: int) -> str:
    nodes = -(-limit // GPUS_PER_NODE) + 1
    return (
        'name = "array-bench"\n[[sites]]\nname = "local"\nregion = "non-capital"\n'
        f'[[pools]]\nname = "h100"\nsite = "local"\nmodel = "H100"\nnodes = {nodes}\n'
        f"gpus_per_node = {GPUS_PER_NODE}\n"
    )


def seed(app: Any, gpus: int) -> str:
    """A project with an active award for ``gpus`` H100s and a member's token."""
    now = datetime.now(UTC)
    with app.state.sessions() as s:
        project = create_project(s, "bench", create_institution(s, "Bench", "startup", "non_capital").id)
        user = create_user(s, "bench")
        set_membership(s, project.id, user.id, "member")
        token = create_token(s, user.id, now)[1]
        program = create_program(
            s, name="call", model="H100", capacity_gpus=gpus, unit_gpus=GPUS_PER_NODE, duration_days=30
        )
        terms = award_repo.AwardTerms(project.id, program.id, gpu_hours_budget=1e6, guaranteed_gpus=gpus)
        award_repo.activate_award(s, award_repo.create_award(s, terms, now).id, now)
        s.commit()
    return token


def run(tasks: int, limit: int, root: Path) -> dict[str, float]:
    (root / "cluster.toml").write_text(cluster_toml(limit))
    settings = Settings(
        home=root / "home",
        database_url=f"sqlite:///{root / 'gpuc.db'}",
        cluster=str(root / "cluster.toml"),
        scheduler_interval_s=0.05,
    )
    app = create_app(settings)
    token = seed(app, (-(-limit // GPUS_PER_NODE) + 1) * GPUS_PER_NODE)
    stop = start_in_background(app, settings)
    client = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    body = {"project": "bench", "command": ["true"], "time_limit": "10m", "array": f"0-{tasks - 1}%{limit}"}
    cpu0, children0, wall0 = time.process_time(), os.times(), time.perf_counter()
    response = client.post("/arrays", json=body)
    submit_s = time.perf_counter() - wall0
    response.raise_for_status()
    array_id = response.json()["id"]
    while client.get(f"/arrays/{array_id}").json()["states"] != {"finished": tasks}:
        time.sleep(POLL_S)
    wall_s = time.perf_counter() - wall0
    cpu_s, children = time.process_time() - cpu0, os.times()
    children_s = children.children_user + children.children_system
    children_s -= children0.children_user + children0.children_system
    client.close()
    stop.set()
    app.state.scheduler_wake.set()
    for thread in threading.enumerate():
        if thread.name == "gpuc-scheduler":
            thread.join(30)
    app.state.engine.dispose()
    return {
        "submit_s": submit_s,
        "wall_s": wall_s,
        "tasks_per_s": tasks / wall_s,
        "server_cpu_ms_per_task": cpu_s / tasks * 1e3,
        "task_cpu_ms_per_task": children_s / tasks * 1e3,
    }


def measure(tasks: int, limit: int) -> dict[str, float]:
    """One run in a fresh directory, removed afterwards with the jobs' work directories."""
    root = Path(tempfile.mkdtemp(prefix="gpuc-array-bench-"))
    try:
        return run(tasks, limit, root)
    finally:
        work_root = root / "home" / "backend" / "local" / "work_root"
        if work_root.exists():
            shutil.rmtree(work_root.read_text().strip(), ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def _run_in_process_of(src: Path, argv: list[str]) -> dict[str, float]:
    """This script with ``src`` first on the import path, its figures read back as JSON."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        env = {**os.environ, "PYTHONPATH": str(src)}
        subprocess.run([sys.executable, __file__, *argv, "--json-out", out.name], env=env, check=True)
        data: dict[str, float] = json.loads(Path(out.name).read_text())
        return data


def _print(tasks: int, limit: int, columns: list[tuple[str, dict[str, float]]]) -> None:
    print(f"array of {tasks} tasks %{limit}, each running `true`, on SQLite")
    print(f"{'':28s}" + "".join(f"{name:>12s}" for name, _ in columns))
    for key, label in (
        ("submit_s", "submit (one call), s"),
        ("wall_s", "run to completion, s"),
        ("tasks_per_s", "tasks per second"),
        ("server_cpu_ms_per_task", "server CPU, ms/task"),
        ("task_cpu_ms_per_task", "task processes CPU, ms/task"),
    ):
        print(f"{label:28s}" + "".join(f"{figures[key]:12.2f}" for _, figures in columns))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tasks", type=int, default=1_000)
    parser.add_argument("--limit", type=int, default=64, help="the array's %%N: tasks running at once")
    parser.add_argument("--baseline-src", default="", help="a src/ holding the code to compare with")
    parser.add_argument("--json-out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_src:
        base = Path(args.baseline_src)
        base = base / "src" if (base / "src" / "gpucommons").is_dir() else base
        if not (base / "gpucommons").is_dir():
            parser.error(f"--baseline-src {args.baseline_src}: no gpucommons package there")
        argv = ["--tasks", str(args.tasks), "--limit", str(args.limit)]
        before = _run_in_process_of(base.resolve(), argv)
        after = _run_in_process_of(Path(__file__).resolve().parents[1] / "src", argv)
        _print(args.tasks, args.limit, [("before", before), ("after", after)])
        return
    figures = measure(args.tasks, args.limit)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures))
        return
    _print(args.tasks, args.limit, [("now", figures)])


if __name__ == "__main__":
    main()
