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

import _json  # json's C scanner: ``import json`` would pull in ``re`` and ``enum``
import _signal  # type: ignore[import-not-found]  # under ``signal``, which would pull in ``enum``
import os
import sys
import time

META_FILE = "meta.json"
CLAIM_FILE = "claim"
EXIT_FILE = "exit_code"
ABANDONED_EXIT = 75  # EX_TEMPFAIL: the launch was resolved without us; nothing ran
JOB_UMASK = 0o077
NOT_RUN_EXIT = 127  # as a shell reports a command it cannot run
SIGTERM: int = _signal.SIGTERM


class _JsonSyntax:
    """What ``_json.make_scanner`` reads off a decoder: plain JSON, as ``json.loads`` parses it."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity


_scan_json = _json.make_scanner(_JsonSyntax())  # type: ignore[arg-type]  # a context is duck-typed


def parse_json(text: str) -> object:
    """``json.loads(text)`` without importing ``json``; ``ValueError`` for anything that is not one
    JSON value (surrounding whitespace allowed)."""
    text = text.strip()
    try:
        value, end = _scan_json(text, 0)
    except StopIteration:
        raise ValueError("not a JSON document") from None
    if end != len(text):
        raise ValueError(f"extra data after the JSON value at {end}")
    return value


def json_object(record: dict[str, bool | int | float]) -> str:
    """``record`` (numbers and booleans under plain names, all a claim holds) as a JSON object."""
    fields = (
        f'"{k}": {"true" if v is True else "false" if v is False else repr(v)}' for k, v in record.items()
    )
    return "{" + ", ".join(fields) + "}"


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


def claim(job_dir: str, record: dict[str, bool | int | float]) -> bool:
    """Create ``job_dir/claim`` holding ``record``, atomically and only once; False if it exists."""
    tmp = os.path.join(job_dir, f"{CLAIM_FILE}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(json_object(record))
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
            os.kill(-1, _signal.SIGKILL)
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


class LaunchRecordError(ValueError):
    """A launch record without what the wrapper needs to run it."""


def _launch_fields(launch: dict[str, object]) -> tuple[list[str], dict[str, str], str, int | None]:
    """The command, environment, work directory and uid (``None``: the wrapper's own) of a record."""
    command, env, workdir, uid = (
        launch.get("command"),
        launch.get("env"),
        launch.get("workdir"),
        launch.get("uid"),
    )
    if (
        not isinstance(command, list)
        or not command
        or not isinstance(env, dict)
        or not isinstance(workdir, str)
    ):
        raise LaunchRecordError("the record lacks a command, an environment or a work directory")
    if uid is not None and (not isinstance(uid, int) or isinstance(uid, bool)):
        raise LaunchRecordError(f"the record's uid {uid!r} is not a number")
    return [str(a) for a in command], {str(k): str(v) for k, v in env.items()}, workdir, uid


def _program_paths(program: str, env: dict[str, str]) -> list[str]:
    """Where to look for ``program``: itself when it names a path, else in each directory of the
    job's ``PATH`` (found here, before the child gives up the server's rights and its imports)."""
    if "/" in program:
        return [program]
    return [os.path.join(d or ".", program) for d in env.get("PATH", os.defpath).split(os.pathsep)]


def _exec_child(command: list[str], env: dict[str, str], workdir: str, uid: int | None, report: int) -> None:
    """In the forked child: become the job and exec its command; on failure write why to ``report``
    (closed by a successful exec, as it is close-on-exec). Only builtins run here: once the child is
    the job's uid it may not read the interpreter's library. Never returns."""
    try:
        paths = _program_paths(command[0], env)
        os.closerange(3, report)  # the uid's lock, inherited from the backend, stays with the wrapper
        os.closerange(report + 1, os.sysconf("SC_OPEN_MAX"))
        _signal.signal(_signal.SIGPIPE, _signal.SIG_DFL)  # Python ignores it; a command expects the default
        _signal.signal(_signal.SIGXFSZ, _signal.SIG_DFL)
        os.chdir(workdir)
        os.umask(JOB_UMASK)
        if uid is not None:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        failures: list[OSError] = []
        for path in paths:  # as execvp does: on to the next directory, the first real error wins
            try:
                os.execve(path, command, env)
            except OSError as exc:
                failures.append(exc)
        missing = (FileNotFoundError, NotADirectoryError)
        raise next((e for e in failures if not isinstance(e, missing)), failures[-1])
    except BaseException as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else repr(exc)
        os.write(report, why.encode(errors="replace"))
    finally:
        os._exit(NOT_RUN_EXIT)


class SpawnError(Exception):
    """The job's command could not be started; the message says why."""


def spawn(command: list[str], env: dict[str, str], workdir: str, uid: int | None) -> int:
    """Start ``command`` as ``uid`` in ``workdir`` with exactly ``env`` (its ``PATH`` finds the
    program), no supplementary groups and umask 077, and return its pid once it runs the program;
    ``SpawnError`` when it cannot (why, reported by the child through a close-on-exec pipe)."""
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked child
        os.close(readable)
        _exec_child(command, env, workdir, uid, writable)
    os.close(writable)
    report = b""
    while chunk := os.read(readable, 512):
        report += chunk
    os.close(readable)
    if report:
        os.waitpid(pid, 0)
        raise SpawnError(report.decode(errors="replace"))
    return pid


def _wait(pid: int) -> int:
    """The exit code of the child ``pid``; killed by signal N it is 128 + N, as a shell reports."""
    _, status = os.waitpid(pid, 0)  # an interrupting SIGTERM is retried (PEP 475)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 128 - code


def _run(launch: dict[str, object]) -> int:
    command, env, workdir, uid = _launch_fields(launch)
    if _Stop.asked:
        print("gpuc: stopped before it started", file=sys.stderr)
        return 128 + SIGTERM
    try:
        pid = spawn(command, env, workdir, uid)
    except (OSError, SpawnError) as exc:  # OSError: no pipe or fork for it
        print(f"gpuc: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        return NOT_RUN_EXIT
    if _Stop.asked:  # it came while the child was between fork and exec, where it is not kept
        os.kill(pid, SIGTERM)
    return _wait(pid)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -I -S wrapper.py JOB_DIR", file=sys.stderr)
        return 2
    job_dir = argv[0]
    try:
        with open(os.path.join(job_dir, META_FILE)) as fh:
            launch = parse_json(fh.read())
        if not isinstance(launch, dict):
            raise LaunchRecordError("the record is not a JSON object")
        _launch_fields(launch)
    except (OSError, ValueError) as exc:
        print(f"gpuc: no launch record in {job_dir}: {exc}", file=sys.stderr)
        return 2
    _signal.signal(SIGTERM, _Stop.ask)
    me = {"pid": os.getpid(), "start_ticks": own_start_ticks(), "started_s": time.time()}
    if not claim(job_dir, me):
        return ABANDONED_EXIT
    exit_code = _run(launch)
    uid = launch.get("uid")
    if isinstance(uid, int):
        sweep(uid)
    _write_atomic(os.path.join(job_dir, EXIT_FILE), f"{exit_code}\n")
    return exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
