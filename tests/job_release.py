"""A test job that runs until the test releases it, in place of a ``sleep``: the job blocks reading a
named pipe (``Release.command``, ``cat`` of it), and ``release()`` ends that read with an end of file.

The release is a latch: it opens the pipe (waking every job blocked on it, which then reads an end of
file) and puts an empty file in its place, so a job that only gets to its ``cat`` later ends at once
too. The pipes live in a directory every job uid may reach (jobs run under their own uids when the
tests run as root). The ``releases`` fixture makes them and releases whatever is left at the end of
the test, so no job outlives it waiting.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

__all__ = ["Release", "releases"]


class Release:
    """One named pipe a job blocks on until ``release()``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path)
        path.chmod(0o644)

    @property
    def command(self) -> list[str]:
        """A job's argv that runs until released."""
        return ["cat", str(self.path)]

    @property
    def shell(self) -> str:
        """The same, as a step of a shell script."""
        return f"cat {shlex.quote(str(self.path))} >/dev/null"

    @property
    def released(self) -> bool:
        return self.path.exists() and not self.path.is_fifo()

    def release(self) -> None:
        """Let every job blocked on the pipe go on, and every later one pass at once."""
        if self.released:
            return
        held = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)  # wakes the readers waiting to open it
        try:
            passed = self.path.with_name(self.path.name + ".released")
            passed.touch(0o644)
            os.replace(passed, self.path)
        finally:
            os.close(held)  # the last writer goes: the readers read an end of file


@pytest.fixture
def releases() -> Iterator[Callable[[str], Release]]:
    """``releases(name)`` makes a ``Release``; every one is released when the test ends."""
    where = Path(tempfile.mkdtemp(prefix="gpuc-test-release-"))
    where.chmod(0o711)
    made: list[Release] = []

    def make(name: str) -> Release:
        made.append(Release(where / name))
        return made[-1]

    yield make
    for release in made:
        release.release()
    shutil.rmtree(where, ignore_errors=True)
