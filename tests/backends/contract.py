"""The backend contract: checks every live backend must pass, written against ``engine.ports.Backend``.

Each check takes a ``ContractEnv``: ``make_backend()`` returns a fresh backend instance over the same
persistent state (calling it again is a "server restart"), ``make_spec(job_id, argv, time_limit_s)``
builds a ``LaunchSpec``, and ``job_dir(spec)`` says where the job runs, which the test can read (the
checks leave marker files there): the spec's ``workdir`` unless the backend gives each job its own.
The local backend runs them in ``test_local.py``; other backends reuse them with their own env.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gpucommons.engine.ports import Backend, BackendEvent, LaunchSpec
from tests.components import wait_until

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

    def terminal() -> BackendEvent | None:
        return next((e for e in backend.poll() if e.job_id == job_id and e.kind in TERMINAL), None)

    return wait_until(terminal, wait_s, f"job {job_id}: no terminal event", poll_s=0.1)


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


# A job with a child in the background that never ends by itself: the child blocks opening a named
# pipe the job made in its own directory and nobody writes to; ``started`` says the child exists.
BLOCKED_CHILD = "mkfifo held && (touch started; exec cat held) & wait"
# A job that runs until the test opens its pipe ``go`` for writing and closes it (``release``).
UNTIL_RELEASED = "mkfifo go && cat go"


def _children(job_dir: Path) -> list[int]:
    """The processes of a job still alive: those whose working directory is the job's.

    ``BLOCKED_CHILD`` and the ``cat`` it ends in never change directory, so they run in the directory
    that holds ``started``; an unrelated process has no reason to. A zombie has no working directory
    left, so it counts as gone. A process this test may not inspect (another user's, when not root) is
    not the job's: the job runs as this user, or, under a uid of its own, only when this test is
    root."""
    where = os.path.realpath(job_dir)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "cwd") == where:
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, a zombie, or not ours to inspect
            continue
    return found


def _wait_children_gone(job_dir: Path, wait_s: float, what: str) -> None:
    """Wait until no process of the job is left: none runs in its directory. The child blocks, so it
    cannot pass while the child still lives, however loaded the host."""
    wait_until(lambda: not _children(job_dir), wait_s, lambda: f"{what}: pids {_children(job_dir)}")


def release(pipe: Path, wait_s: float) -> None:
    """Let a job blocked reading ``pipe`` go on: once the job has made it and opened it, open it for
    writing and close it (the job reads an end of file)."""

    def opened() -> int | None:
        try:
            return os.open(pipe, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO until the job reads it
        except OSError:
            return None

    os.close(wait_until(opened, wait_s, f"nothing ever read {pipe}"))


def check_cancel_kills_group(env: ContractEnv) -> None:
    backend = env.make_backend()
    spec = env.make_spec(3, ["sh", "-c", BLOCKED_CHILD], 600)
    ref = backend.launch(spec)
    started = env.job_dir(spec) / "started"
    wait_until(started.exists, env.wait_s, "the job never started its background child")
    # the job runs until it is cancelled: its processes must be seen now, or their absence later
    # would prove nothing
    assert _children(started.parent), f"no process of the job found in /proc with cwd {started.parent}"
    backend.cancel(3, ref)
    event = wait_for(backend, 3, env.wait_s)
    assert event.kind == "cancelled"
    _wait_children_gone(started.parent, env.wait_s, "a process the job spawned outlived the cancel")


def check_time_limit(env: ContractEnv) -> None:
    backend = env.make_backend()
    spec = env.make_spec(4, ["sh", "-c", BLOCKED_CHILD], 1.0)
    backend.launch(spec)
    event = wait_for(backend, 4, env.wait_s)
    assert event.kind == "timeout"
    job_dir = env.job_dir(spec)
    _wait_children_gone(job_dir, env.wait_s, "a process the job spawned outlived its time limit")


def check_adopt_after_restart(env: ContractEnv) -> None:
    first = env.make_backend()
    spec = env.make_spec(5, ["sh", "-c", f"echo run >> launches; {UNTIL_RELEASED}; exit 0"], 60)
    ref = first.launch(spec)
    second = env.make_backend()  # the restarted server: not the parent of the job
    assert [e for e in second.adopt([(5, ref)]) if e.kind in TERMINAL] == []
    release(env.job_dir(spec) / "go", env.wait_s)
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
