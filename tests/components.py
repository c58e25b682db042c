"""Real components a test needs (a trace, PostgreSQL, a Slurm cluster): missing, they skip a local
run and fail a CI run, since a green CI with service-backed tests skipped would hide a broken setup.

Also the one way tests wait for what no event or file notification signals: ``wait_until``."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

CI = os.environ.get("CI") == "true"
T = TypeVar("T")


def require_component(available: bool, what: str) -> None:
    """Skip a test whose real component (a trace, a service) is missing, except under ``CI=true``,
    where it fails: CI must run every test, and a skip there would hide a broken setup."""
    if available:
        return
    if CI:
        pytest.fail(f"{what} is missing, and CI=true requires it")
    pytest.skip(f"{what} is missing")


def wait_until(
    condition: Callable[[], T | None],
    wait_s: float,
    what: str | Callable[[], str],
    poll_s: float = 0.05,
) -> T:
    """Poll ``condition`` until it returns something truthy and return that; after ``wait_s`` seconds
    (by the monotonic clock) fail the test with ``what`` and how long it waited.

    For conditions no event or file notification signals: a process's state in /proc, a database row,
    a backend's poll, a server's answer. ``what`` may be a function, called only on failure, for a
    message that shows the state at that moment (a server's log, the events seen so far). The failure
    is an ``AssertionError``, as a plain ``assert`` raises, so it behaves the same in code that runs
    inside the component under test (a backend's callback, a thread)."""
    __tracebackhide__ = True
    deadline = time.monotonic() + wait_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            message = what() if callable(what) else what
            raise AssertionError(f"{message} (waited {wait_s:g} s)")
        time.sleep(poll_s)
