"""``python -I -S wrapper.py JOB_DIR``: claim a recorded launch, run it as the job's user, keep its exit code.

The local backend writes the launch record ``JOB_DIR/meta.json`` (command, environment, work
directory, uid) *before* it starts this wrapper; the wrapper reads everything from there, so neither its
own environment nor its argument list carries anything the job chose. Its first act is to *claim* the
launch: ``claim`` creates ``JOB_DIR/claim`` (its pid and kernel start time) atomically with ``link()``.
A restarted server that finds a record without a claim makes the same claim for "abandoned"; whichever
comes first wins, so a wrapper that starts late finds the launch already resolved and exits without
running anything (``ABANDONED_EXIT``). A job therefore runs only under a claim the backend can find.

It then runs the command in the job's work directory as the job's uid (no supplementary groups, umask
077), with stdout and stderr on the log descriptors it inherited, and writes the exit code to
``JOB_DIR/exit_code``: a restarted server is not the parent of the jobs it adopts and cannot ``wait()``
for them, but it can read that file. Before it does, it kills whatever the job left running under its
uid (``sweep``), so an exit code on disk means nothing of the job is left. The wrapper itself stays the
server's user, so a job can neither kill it nor forge its exit code. It survives SIGTERM (a handler, not
SIG_IGN, so the child keeps the default disposition) so a job stopped gracefully still gets its code
written; SIGKILL of the whole group leaves no file, which the backend reads as "killed". A SIGTERM that
comes before the command exists (a cancel or preemption just after the launch) means the command is
never started (exit 143); one that comes while it is being started, when the child may not yet have a
handler that keeps it, is passed on to it once it runs.

Only the standard library is imported: the wrapper runs in isolated mode without ``site``, whatever the
server's ``PYTHONPATH`` or virtual environment.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

META_FILE = "meta.json"
CLAIM_FILE = "claim"
EXIT_FILE = "exit_code"
ABANDONED_EXIT = 75  # EX_TEMPFAIL: the launch was resolved without us; nothing ran
JOB_UMASK = 0o077


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def own_start_ticks() -> int:
    """This process's start time in clock ticks (``/proc/self/stat`` field 22), which survives pid reuse."""
    with open("/proc/self/stat") as fh:
        text = fh.read()
    return int(text[text.rindex(")") + 2 :].split()[19])


def claim(job_dir: str, record: dict[str, Any]) -> bool:
    """Create ``job_dir/claim`` holding ``record``, atomically and only once; False if it exists."""
    tmp = os.path.join(job_dir, f"{CLAIM_FILE}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh)
    try:
        os.link(tmp, os.path.join(job_dir, CLAIM_FILE))
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def sweep(uid: int) -> None:
    """Kill every process left under the job's uid (daemons, processes that left the group): a child
    becomes that uid and sends ``kill(-1, SIGKILL)``, which reaches exactly that uid's processes. The
    wrapper still holds the uid's lock (inherited from the backend), so no other job has the uid yet."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked child
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


class _Stop:
    """Whether the wrapper was sent SIGTERM (the group's stop, meant for the command)."""

    asked = False

    @classmethod
    def ask(cls, _sig: int, _frame: object) -> None:
        cls.asked = True


def _run(launch: dict[str, Any]) -> int:
    command = [str(a) for a in launch["command"]]
    if _Stop.asked:
        print("gpuc: stopped before it started", file=sys.stderr)
        return 128 + signal.SIGTERM
    uid = launch.get("uid")
    identity: dict[str, Any] = {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}
    try:
        child = subprocess.Popen(
            command,
            env={str(k): str(v) for k, v in launch["env"].items()},
            cwd=launch["workdir"],
            umask=JOB_UMASK,
            **identity,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        print(f"gpuc: cannot run {command[0]!r}: {reason}", file=sys.stderr)
        return 127
    if _Stop.asked:  # it came while the child was between fork and exec, where it is not kept
        child.send_signal(signal.SIGTERM)
    while True:
        try:
            code = child.wait()
            break
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
            continue
    return code if code >= 0 else 128 - code  # killed by signal N -> 128 + N, as a shell reports


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -I -S wrapper.py JOB_DIR", file=sys.stderr)
        return 2
    job_dir = argv[0]
    try:
        with open(os.path.join(job_dir, META_FILE)) as fh:
            launch = json.load(fh)
    except (OSError, ValueError) as exc:
        print(f"gpuc: no launch record in {job_dir}: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _Stop.ask)
    me = {"pid": os.getpid(), "start_ticks": own_start_ticks(), "started_s": time.time()}
    if not claim(job_dir, me):
        return ABANDONED_EXIT
    exit_code = _run(launch)
    if isinstance(launch.get("uid"), int):
        sweep(launch["uid"])
    _write_atomic(os.path.join(job_dir, EXIT_FILE), f"{exit_code}\n")
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
