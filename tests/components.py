"""Real components a test needs (a trace, PostgreSQL, a Slurm cluster): missing, they skip a local
run and fail a CI run, since a green CI with service-backed tests skipped would hide a broken setup."""

from __future__ import annotations

import os

import pytest

CI = os.environ.get("CI") == "true"


def require_component(available: bool, what: str) -> None:
    """Skip a test whose real component (a trace, a service) is missing, except under ``CI=true``,
    where it fails: CI must run every test, and a skip there would hide a broken setup."""
    if available:
        return
    if CI:
        pytest.fail(f"{what} is missing, and CI=true requires it")
    pytest.skip(f"{what} is missing")
