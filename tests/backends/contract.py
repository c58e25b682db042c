"""The backend contract: checks every live backend must pass, written against ``engine.ports.Backend``.

Each check takes a ``ContractEnv``: ``make_backend()`` returns a fresh backend instance over the same
persistent state (calling it again is a "server restart"), ``make_spec(job_id, argv, time_limit_s)``
builds a ``LaunchSpec``, and ``job_dir(spec)`` says where the job runs, which the test can read (the
checks leave marker files there): the spec's ``workdir`` unless the backend gives each job its own.
The local backend runs them in ``test_local.py``; other backends reuse them with their own env.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gpucommons.engine.ports import Backend, BackendEvent, LaunchSpec

TERMINAL = frozenset({"finished", "failed", "cancelled", "timeout", "lost"})


def spec_workdir(spec: LaunchSpec) -> Path:
    return spec.workdir


@dataclass(frozen=True)
class ContractEnv:
    make_backend: Callable[[], Backend]
    make_spec: Callable[[int, Sequence[str], float], LaunchSpec]
    wait_s: float = 30.0  # how long a check waits for an event before failing
    job_dir: Callable[[LaunchSpec], Path] = spec_workdir


def wait_for(backend: Backend, job_id: int, wait_s: float) -> BackendEvent:
    """Poll until ``job_id`` reaches a terminal event; fail after ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        for event in backend.poll():
            if event.job_id == job_id and event.kind in TERMINAL:
                return event
        time.sleep(0.1)
    raise AssertionError(f"job {job_id}: no terminal event within {wait_s} s")


def check_finished(env: ContractEnv) -> None:
    backend = env.make_backend()
    spec = env.make_spec(1, ["sh", "-c", "echo hello; exit 0"], 60)
    ref = backend.launch(spec)
    assert ref
    event = wait_for(backend, 1, env.wait_s)
    assert (event.kind, event.exit_code) == ("finished", 0)
    assert "hello" in spec.stdout_path.read_text()


def check_failed(env: ContractEnv) -> None:
    backend = env.make_backend()
    spec = env.make_spec(2, ["sh", "-c", "echo oops >&2; exit 3"], 60)
    backend.launch(spec)
    event = wait_for(backend, 2, env.wait_s)
    assert (event.kind, event.exit_code) == ("failed", 3)
    assert "oops" in spec.stderr_path.read_text()


HEARTBEAT = "(while true; do date +%s%N > heartbeat; sleep 0.1; done) & wait"


def _heartbeat_stopped(path: Path) -> bool:
    """True when the background child the job spawned no longer writes its heartbeat."""
    before = path.read_text() if path.exists() else ""
    time.sleep(0.6)
    return (path.read_text() if path.exists() else "") == before


def check_cancel_kills_group(env: ContractEnv) -> None:
    backend = env.make_backend()
    spec = env.make_spec(3, ["sh", "-c", HEARTBEAT], 600)
    ref = backend.launch(spec)
    heartbeat = env.job_dir(spec) / "heartbeat"
    deadline = time.monotonic() + env.wait_s
    while not heartbeat.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert heartbeat.exists(), "the job never started its background child"
    backend.cancel(3, ref)
    event = wait_for(backend, 3, env.wait_s)
    assert event.kind == "cancelled"
    assert _heartbeat_stopped(heartbeat), "a process the job spawned outlived the cancel"


def check_time_limit(env: ContractEnv) -> None:
    backend = env.make_backend()
    spec = env.make_spec(4, ["sh", "-c", HEARTBEAT], 1.0)
    backend.launch(spec)
    event = wait_for(backend, 4, env.wait_s)
    assert event.kind == "timeout"
    assert _heartbeat_stopped(env.job_dir(spec) / "heartbeat")


def check_adopt_after_restart(env: ContractEnv) -> None:
    first = env.make_backend()
    spec = env.make_spec(5, ["sh", "-c", "echo run >> launches; sleep 1.5; exit 0"], 60)
    ref = first.launch(spec)
    second = env.make_backend()  # the restarted server: not the parent of the job
    assert [e for e in second.adopt([(5, ref)]) if e.kind in TERMINAL] == []
    event = wait_for(second, 5, env.wait_s)
    assert (event.kind, event.exit_code) == ("finished", 0)
    assert (env.job_dir(spec) / "launches").read_text() == "run\n", "adopt must never start a job again"


def check_adopt_finished_meanwhile(env: ContractEnv) -> None:
    first = env.make_backend()
    spec = env.make_spec(6, ["sh", "-c", "exit 4"], 60)
    ref = first.launch(spec)
    wait_for(first, 6, env.wait_s)  # the job has ended (however long the backend takes to start it)
    events = env.make_backend().adopt([(6, ref)])
    # a backend may first report when the job really started (Slurm's StartTime), for the charge
    ends = [(e.job_id, e.kind, e.exit_code) for e in events if e.kind != "started"]
    assert ends == [(6, "failed", 4)]


CHECKS: tuple[Callable[[ContractEnv], None], ...] = (
    check_finished,
    check_failed,
    check_cancel_kills_group,
    check_time_limit,
    check_adopt_after_restart,
    check_adopt_finished_meanwhile,
)
