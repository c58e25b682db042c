"""What a preemption's grace period costs the live engine (design note 0016, "In the live service").

One real ``LiveEngine`` (the service's ``quota`` policy, the live commons) on the ``demo`` cluster,
a fresh SQLite database and the real local backend. A filler holds half of one H100 node; a victim
holds the other node and, once told to stop, takes ``--checkpoint-s`` seconds to write its checkpoint
and exit. A high-priority job then needs the victim's node (the preemption), and right after it a
small job arrives that fits beside the filler. The engine steps every ``--interval-s`` until both have
started. Printed: the longest step, and from the preempting decision to the small job's start and to
the preempting job's start (and the victim's exit).

``--baseline-src PATH`` runs the same scenario with the package at ``PATH/src`` first (e.g. the
previous commit, unpacked by ``git archive HEAD | tar -x -C /tmp/base``), then with this checkout's.

    .venv/bin/python benchmarks/graceful_preemption.py --baseline-src /tmp/base
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from pathlib import Path


def run(checkpoint_s: float, interval_s: float) -> dict[str, float]:
    from gpucommons.backends.local import LocalBackend
    from gpucommons.clusterfile import load_cluster
    from gpucommons.engine.live import EngineOptions, LiveEngine, live_commons
    from gpucommons.policy.registry import build_policy
    from gpucommons.store import awards
    from gpucommons.store.base import make_engine, session_factory, upgrade
    from gpucommons.store.calls import create_program
    from gpucommons.store.jobs import JobRequest, JobRow, submit_job
    from gpucommons.store.scheduler_state import DatabaseSchedulerState
    from gpucommons.store.tenancy import create_institution, create_project, create_user

    root = Path(tempfile.mkdtemp(prefix="gpuc-bench-grace-"))
    url = f"sqlite:///{root / 'gpuc.db'}"
    upgrade(url)
    sessions = session_factory(make_engine(url))
    cluster = load_cluster("demo")
    now = datetime.now(UTC)
    with sessions() as s:
        project = create_project(s, "p", create_institution(s, "i", "startup", "capital").id)
        user = create_user(s, "u")
        program = create_program(s, name="c", model="H100", capacity_gpus=16, unit_gpus=8,
                                 duration_days=30, price_krw_per_gpu_hour=1000)  # fmt: skip
        terms = awards.AwardTerms(project.id, program.id, gpu_hours_budget=1000.0, guaranteed_gpus=16)
        awards.activate_award(s, awards.create_award(s, terms, now - timedelta(minutes=1)).id, now)
        s.commit()
        ids = (project.id, user.id)
    known = {f.name for f in fields(JobRequest)}

    def submit(script: str, gpus: int, priority: str, **extra: str) -> int:
        asked = {k: v for k, v in extra.items() if k in known}  # the baseline has no grace period
        request = JobRequest(gpus=gpus, command=["sh", "-c", script], gpus_per_node=gpus,
                             priority_class=priority, **asked)  # type: ignore[arg-type]  # fmt: skip
        with sessions() as s:
            row, _ = submit_job(s, cluster, *ids, request, datetime.now(UTC))
            s.commit()
            return row.id

    backend = LocalBackend(root / "backend", grace_s=10.0)
    engine = LiveEngine(DatabaseSchedulerState(sessions, cluster), backend, cluster,
                        build_policy("quota", commons=live_commons(backend)),
                        EngineOptions(logs_dir=root / "jobs"))  # fmt: skip

    def log(job_id: int) -> str:
        path = root / "jobs" / str(job_id) / "stdout.log"
        return path.read_text() if path.exists() else ""

    steps: list[float] = []

    def step_until(done: object) -> float:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            began = time.perf_counter()
            engine.step()
            steps.append(time.perf_counter() - began)
            if done():  # type: ignore[operator]
                return time.time()
            time.sleep(interval_s)  # the engine's own interval between steps
        raise SystemExit("the scenario did not finish in 120 s")

    forever = "while :; do sleep 1; done"
    try:
        submit(f"echo started; {forever}", 4, "high")
        victim = submit(f"trap 'sleep {checkpoint_s}; echo exit $(date +%s.%N); exit 0' TERM; echo ready; "
                        "while :; do sleep 0.05; done", 8, "normal", grace_period="60s")  # fmt: skip
        step_until(lambda: "ready" in log(victim))
        steps.clear()
        high = submit(f"echo started; {forever}", 8, "high")
        decided = time.time()
        small = None
        for _ in range(2):  # the preempting step, and the next one after the small job's arrival
            began = time.perf_counter()
            engine.step()
            steps.append(time.perf_counter() - began)
            small = small or submit(f"echo started; {forever}", 4, "normal")
        small_at = step_until(lambda: "started" in log(small))  # type: ignore[arg-type]
        high_at = step_until(lambda: "started" in log(high))
        exited = float(log(victim).split("exit ", 1)[1].split()[0])
        return {
            "longest_step_s": max(steps),
            "decision_to_small_start_s": small_at - decided,
            "decision_to_victim_exit_s": exited - decided,
            "decision_to_preemptor_start_s": high_at - decided,
        }
    finally:
        with sessions() as s:
            for (ref,) in s.query(JobRow.backend_ref).all():
                with contextlib.suppress(ValueError, ProcessLookupError, PermissionError):
                    os.killpg(int(ref.split(":")[0]), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint-s", type=float, default=3.0, help="how long the victim checkpoints")
    parser.add_argument("--interval-s", type=float, default=0.2, help="the engine's interval between steps")
    parser.add_argument("--baseline-src", default="", help="a checkout's src/ (or checkout) to compare with")
    parser.add_argument("--json-out", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.checkpoint_s <= 0 or args.interval_s <= 0:
        parser.error("--checkpoint-s and --interval-s must be more than 0")
    if not args.baseline_src:
        figures = run(args.checkpoint_s, args.interval_s)
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(figures))
        else:
            _print([("now", figures)])
        return
    base = Path(args.baseline_src)
    base = base / "src" if (base / "src" / "gpucommons").is_dir() else base
    if not (base / "gpucommons").is_dir():
        parser.error(f"--baseline-src {args.baseline_src}: no gpucommons package there")
    results = []
    for label, src in (("before", base.resolve()), ("after", Path(__file__).resolve().parents[1] / "src")):
        out = Path(tempfile.mkdtemp()) / "figures.json"
        argv = [sys.executable, __file__, "--checkpoint-s", str(args.checkpoint_s),
                "--interval-s", str(args.interval_s), "--json-out", str(out)]  # fmt: skip
        subprocess.run(argv, env={**os.environ, "PYTHONPATH": str(src)}, check=True, timeout=600)
        results.append((label, json.loads(out.read_text())))
    _print(results)


def _print(results: list[tuple[str, dict[str, float]]]) -> None:
    print(f"{'seconds':<32}" + "".join(f"{label:>10}" for label, _ in results))
    for name in results[0][1]:
        print(f"{name:<32}" + "".join(f"{figures[name]:>10.3f}" for _, figures in results))


if __name__ == "__main__":
    main()
