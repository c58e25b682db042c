"""The Slurm test cluster for every ``@pytest.mark.slurm`` test, and small helpers around its clients.

Loaded as a pytest plugin from ``tests/conftest.py``. ``slurm_env`` is session-scoped so the whole run
shares one cluster: the environment's when ``SLURM_CONF`` is set (``scripts/test.sh`` starts one and
exports it), else one started from ``<repo>/../shared/slurm/start-test-cluster.sh`` (root only) into a
temporary directory on its own port base (``SLURM_TEST_PORT_BASE``, default 7917, so it never meets a
cluster on Slurm's usual ports), stopped when the session ends. The fixture is only set up by tests
that ask for it, so runs that deselect ``slurm`` never touch Slurm.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.components import require_component, wait_until

SCRIPTS = Path(__file__).resolve().parents[1].parent / "shared" / "slurm"
DEFAULT_PORT_BASE = "7917"
SLURM_TERMINAL = frozenset(
    {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL"}
    | {"DEADLINE", "REVOKED"}
)


@pytest.fixture(scope="session")
def slurm_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment for Slurm's clients (``SLURM_CONF`` set) of the cluster the tests use."""
    if os.environ.get("SLURM_CONF"):
        yield dict(os.environ)
        return
    start = SCRIPTS / "start-test-cluster.sh"
    require_component(start.exists(), f"a Slurm test cluster (no SLURM_CONF, no script at {start})")
    require_component(os.geteuid() == 0, "a Slurm test cluster (no SLURM_CONF; starting one needs root)")
    directory = tmp_path_factory.mktemp("slurm")
    env = dict(os.environ)
    env.setdefault("SLURM_TEST_PORT_BASE", DEFAULT_PORT_BASE)
    out = subprocess.run([start, directory], env=env, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        pytest.fail(f"start-test-cluster.sh failed: {out.stderr.strip().splitlines()[-5:]}")
    for line in out.stdout.splitlines():
        name, value = line.removeprefix("export ").split("=", 1)
        env[name] = value
    yield env
    subprocess.run(
        [SCRIPTS / "stop-test-cluster.sh", directory], capture_output=True, timeout=120, check=False
    )


def slurm(env: dict[str, str], *args: str) -> str:
    """Run one Slurm client command (epoch times in its output); fail the test if it fails."""
    out = subprocess.run(
        args, env=env | {"SLURM_TIME_FORMAT": "%s"}, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def job_info(env: dict[str, str], ref: str) -> dict[str, str]:
    """``scontrol show job -o``: one job's ``Key=Value`` pairs."""
    line = slurm(env, "scontrol", "show", "job", "-o", ref)
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def all_jobs(env: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Every job the controller knows, finished ones included: Slurm id -> (name, state)."""
    jobs = {}
    for line in slurm(env, "squeue", "-h", "-t", "all", "-o", "%i|%j|%T").splitlines():
        ref, name, state = line.split("|")
        jobs[ref] = (name, state)
    return jobs


def cancel_and_wait(env: dict[str, str], refs: list[str], wait_s: float = 30.0) -> None:
    """Cancel these jobs and wait until none of them holds resources any more."""
    active = [r for r, (_, state) in all_jobs(env).items() if r in refs and state not in SLURM_TERMINAL]
    if active:
        subprocess.run(["scancel", *active], env=env, capture_output=True, timeout=30, check=False)
    wait_until(
        lambda: all(all_jobs(env).get(r, ("", "GONE"))[1] in SLURM_TERMINAL | {"GONE"} for r in active),
        wait_s,
        f"Slurm jobs {active} still active after scancel",
        poll_s=0.2,
    )
