"""The submission benchmark (``benchmarks/service_load.py``) still runs end to end: a tiny load on
SQLite through the real API and scheduler, every job stored and placed, its report printed. sbatch is
left out (``--slurm-conf ''``), which the report must say."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_tiny_load_is_stored_placed_and_reported() -> None:
    command = [sys.executable, str(ROOT / "benchmarks" / "service_load.py"), "--slurm-conf", ""]
    command += ["--jobs", "16", "--array-tasks", "40", "--array-size", "10", "--clients", "2"]
    done = subprocess.run(
        [*command, "--nodes", "4", "--drain-s", "60"], cwd=ROOT, capture_output=True, text=True, timeout=110
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    out = done.stdout
    assert "== sbatch not measured" in out, out
    assert "singles: 16 POST /jobs" in out and "arrays:  40 tasks in 4 POST /arrays" in out, out
    assert "every job placed" in out, out
