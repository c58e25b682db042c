"""The line that opens a rerun in a job's logs (``backends.run_header``): none for a first run, the same
text from the local backend's Python and from the Slurm batch script run by a real ``sh``."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gpucommons.backends.run_header import header, header_shell, run_number
from gpucommons.backends.slurm_submit import SlurmConfig, build_submission
from gpucommons.domain.job import Placement
from gpucommons.engine.ports import RESTART_COUNT_ENV
from tests.backends.test_slurm_unit import spec


@pytest.mark.parametrize(
    ("value", "want_run"), [(None, 1), ("0", 1), ("1", 2), ("12", 13), ("-1", 1), ("x", 1), ("٣", 1)]
)
def test_the_run_is_the_restarts_plus_one_and_nonsense_is_a_first_run(
    value: str | None, want_run: int
) -> None:
    assert run_number({} if value is None else {RESTART_COUNT_ENV: value}) == want_run


def test_a_first_run_gets_no_header_and_a_rerun_names_its_run_time_and_gpus(tmp_path: Path) -> None:
    gang = Placement(((0, (0, 1)), (1, (4,))))
    first = spec(tmp_path, gang.node_gpus, node_names=("n1", "n2"), env={})
    assert header(first, 0.0) is None and header_shell(first) == ""
    again = spec(tmp_path, gang.node_gpus, node_names=("n1", "n2"), env={RESTART_COUNT_ENV: "2"})
    at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC).timestamp()
    assert header(again, at) == "=== run 3 of job 1, started 2026-03-01T09:30:00Z on n1:0,n1:1,n2:4 ===\n"


def test_the_batch_script_prints_it_on_both_streams_with_odd_node_names_quoted(tmp_path: Path) -> None:
    odd = "n'1 $(touch pwned)"
    again = spec(tmp_path, node_names=(odd,), env={RESTART_COUNT_ENV: "1"}, command=("echo", "out"))
    submission = build_submission(SlurmConfig(), again)
    assert "--open-mode=append" in submission.args  # a rerun's output follows the first's
    done = subprocess.run(
        ["sh", "-c", submission.script], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    gpus = f"{re.escape(odd)}:0,{re.escape(odd)}:1"
    line = rf"=== run 2 of job 1, started \d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\dZ on {gpus} ==="
    assert re.fullmatch(rf"{line}\nout\n", done.stdout), done.stdout
    assert re.fullmatch(rf"{line}\n", done.stderr), done.stderr
    assert not (tmp_path / "pwned").exists()
    first = build_submission(SlurmConfig(), spec(tmp_path, env={}))
    assert "printf" not in first.script  # a first run's script is as before
