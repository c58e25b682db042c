"""The tasks of a job array as their own witnesses, through two named pipes the test holds open.

Each task (``task_command``, a few bash builtins) prints its array's variables to its log
(``GPUC_ARRAY_JOB_ID GPUC_ARRAY_TASK_ID GPUC_ARRAY_TASK_COUNT SLURM_ARRAY_TASK_ID``), writes
``start KEY INDEX SLURM_INDEX T`` to the ``events`` pipe, with ``KEY`` naming its job
(``GPUC_JOB_ID`` on the local backend, ``SLURM_JOB_ID`` on Slurm), its ``GPUC_ARRAY_TASK_ID`` and
``SLURM_ARRAY_TASK_ID``, and ``T`` its own clock (``$EPOCHREALTIME``); then waits for one byte from
the ``release`` pipe; then writes ``end KEY T``.

``run_to_completion`` reads those lines and hands out the bytes in waves: only when as many tasks are
alive (started, not ended) as the array's limit allows, or every task left is, does it release them.
So the limit is reached in every wave, and a task the scheduler started beyond it would be alive
beside the others and show as one span too many: ``Witness.spans`` are the tasks' lifetimes by their
own clocks, for ``most_overlapping``. The test holds both pipes open for reading and writing, so a
task never waits to open one and never reads an end of file; closing them ends whatever still waits.
"""

from __future__ import annotations

import os
import select
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

TASK = (
    'echo "$GPUC_ARRAY_JOB_ID $GPUC_ARRAY_TASK_ID $GPUC_ARRAY_TASK_COUNT $SLURM_ARRAY_TASK_ID" '
    '&& echo "start $KEY $GPUC_ARRAY_TASK_ID $SLURM_ARRAY_TASK_ID $EPOCHREALTIME" >{events} '
    '&& read -r -n 1 <{release} && echo "end $KEY $EPOCHREALTIME" >{events}'
)


@dataclass(frozen=True)
class Pipes:
    events: Path
    release: Path
    events_fd: int
    release_fd: int

    def task_command(self, key: str) -> list[str]:
        """The argv of a task that names its job by the variable ``key``."""
        script = TASK.format(events=self.events, release=self.release).replace("$KEY", f"${key}")
        return ["bash", "-c", script]


@contextmanager
def array_pipes() -> Iterator[Pipes]:
    """The two pipes, in a directory of their own that every job uid may reach (jobs run under their
    own uids when the tests run as root), removed afterwards."""
    where = Path(tempfile.mkdtemp(prefix="gpuc-test-pipes-"))
    where.chmod(0o711)
    fds: list[int] = []
    try:
        for name in ("events", "release"):
            os.mkfifo(where / name)
            (where / name).chmod(0o666)
            fds.append(os.open(where / name, os.O_RDWR | os.O_NONBLOCK))
        yield Pipes(where / "events", where / "release", *fds)
    finally:
        for fd in fds:
            os.close(fd)
        shutil.rmtree(where, ignore_errors=True)


@dataclass
class Witness:
    """What the tasks wrote, and the release bytes handed out so far."""

    tasks: int
    limit: int
    starts: dict[str, tuple[int, int, float]] = field(default_factory=dict)  # key -> both indexes, start
    ends: dict[str, float] = field(default_factory=dict)
    repeated: list[str] = field(default_factory=list)  # lines of a task seen starting or ending twice
    released: int = 0
    _partial: bytes = b""

    def read(self, data: bytes) -> None:
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            kind, key, *rest = line.decode().split()
            if key in (self.starts if kind == "start" else self.ends):
                self.repeated.append(line.decode())
            elif kind == "start":
                self.starts[key] = (int(rest[0]), int(rest[1]), float(rest[2]))
            else:
                self.ends[key] = float(rest[0])

    @property
    def alive(self) -> int:
        return len(self.starts) - len(self.ends)

    def to_release(self) -> int:
        """Bytes to hand out now: one per alive task not yet released, once the limit's worth (or
        every task left) is alive."""
        unreleased = self.alive - (self.released - len(self.ends))
        return unreleased if self.alive == min(self.limit, self.tasks - len(self.ends)) else 0

    def spans(self) -> list[tuple[float, float]]:
        """Each ended task's lifetime, from its start line to its end line, by its own clock."""
        return [(self.starts[key][2], end) for key, end in self.ends.items()]


def run_to_completion(
    pipes: Pipes,
    tasks: int,
    limit: int,
    wait_s: float,
    between: Callable[[], object] | None = None,
    poll_s: float = 1.0,
) -> Witness:
    """Read the tasks' lines and release them in waves until ``tasks`` have ended; after ``wait_s``
    seconds (monotonic) fail the test with how far they got. ``between`` is called after each read
    or ``poll_s`` without one (a test that steps the engine itself does it there)."""
    witness = Witness(tasks, limit)
    deadline = time.monotonic() + wait_s
    while len(witness.ends) < tasks:
        left_s = deadline - time.monotonic()
        if left_s <= 0:
            raise AssertionError(
                f"{len(witness.ends)} of {tasks} tasks ended, {witness.alive} alive, {witness.released} "
                f"released (waited {wait_s:g} s)"
            )
        if select.select([pipes.events_fd], [], [], min(left_s, poll_s))[0]:
            witness.read(os.read(pipes.events_fd, 65536))
        if between is not None:
            between()
        if count := witness.to_release():
            witness.released += os.write(pipes.release_fd, b"x" * count)
    return witness
