"""The Slurm backend's graceful preemption without Slurm (scripted client answers): the signal now,
the kill at the grace period's end and not before, the end that says when the signal went, the job's
next run deferred meanwhile, and the checkpoint file in the run's environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpucommons.backends.slurm import SlurmBackend
from gpucommons.backends.slurm_submit import SlurmConfig, build_submission
from gpucommons.engine.ports import CHECKPOINT_FILE_ENV, LaunchDeferredError, checkpoint_file
from tests.backends.test_slurm_unit import ScriptedCli, spec, squeue


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


RUNNING = {"job_id": 41, "job_state": "RUNNING", "start_time": 100, "nodes": "h100-2"}


def test_a_preempted_run_is_signalled_now_and_killed_when_its_grace_period_ends(tmp_path: Path) -> None:
    cli = ScriptedCli({
        "sbatch": ["41\n"],
        "squeue": [squeue(RUNNING), "RUNNING\n", squeue(RUNNING), squeue(RUNNING),
                   squeue({**RUNNING, "job_state": "CANCELLED", "end_time": 131, "exit_code": 9})],
        "scontrol": ["AccountingStorageType = accounting_storage/none\n"],
    })  # fmt: skip
    clock = Clock(1000.0)
    backend = SlurmBackend(SlurmConfig(), cli, clock=clock)
    ref = backend.launch(spec(tmp_path))
    assert [e.kind for e in backend.poll()] == ["started"]
    backend.preempt(1, ref, 30.0)
    assert cli.calls[-1] == ("scancel", "--signal=TERM", "--full", "41")
    assert backend.next_deadline_s() == 1030.0
    with pytest.raises(LaunchDeferredError, match="still stopping"):  # its checkpoint is being written
        backend.launch(spec(tmp_path))
    clock.now = 1029.0
    backend.poll()
    assert not [c for c in cli.calls if c[0] == "scancel" and "--signal=KILL" in c]  # not before its end
    clock.now = 1030.5
    backend.poll()
    assert cli.calls[-3:-1] == [("scancel", "--signal=KILL", "--full", "41"), ("scancel", "41")]
    assert backend.next_deadline_s() is None  # killed: nothing more to wait for
    (end,) = [e for e in backend.poll() if e.kind == "cancelled"]
    assert (end.backend_ref, end.at_s, end.signalled_s) == ("41", 131.0, 1000.0)


def test_a_run_slurm_does_not_run_yet_is_cancelled_without_a_signal(tmp_path: Path) -> None:
    cli = ScriptedCli({"sbatch": ["42\n"], "squeue": ["PENDING\n"]})
    backend = SlurmBackend(SlurmConfig(), cli, clock=Clock(5.0))
    ref = backend.launch(spec(tmp_path))
    backend.preempt(1, ref, 30.0)
    assert cli.calls[-1] == ("scancel", "42") and backend.next_deadline_s() is None


def test_a_run_finds_its_checkpoint_file_in_its_working_directory(tmp_path: Path) -> None:
    sub = build_submission(SlurmConfig(), spec(tmp_path, job_id=7))
    assert sub.env[CHECKPOINT_FILE_ENV] == str(checkpoint_file(tmp_path / "w", 7))
    assert str(checkpoint_file(tmp_path / "w", 7)).endswith("/w/.gpuc-checkpoint-7")
