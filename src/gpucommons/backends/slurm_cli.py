"""Running Slurm's client commands (sbatch, squeue, scancel, sinfo, scontrol, sacct).

Every call has a timeout and a controlled environment: ``SLURM_TIME_FORMAT=%s`` so text output carries
epoch seconds instead of local times, and ``SLURM_CONF`` when the backend is pointed at a specific
cluster. A failing command becomes a ``SlurmCommandError`` carrying the command's one-line stderr, so the
CLI and the engine can show it without a traceback.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from gpucommons.errors import GpucError


class SlurmCommandError(GpucError):
    """A Slurm client command failed, timed out or is not installed; the message is one line."""


class SlurmTimeoutError(SlurmCommandError):
    """A Slurm client command gave no answer in time: unlike a refusal, what it asked for may have
    happened (an ``sbatch`` whose job the controller accepted after all)."""


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


class SlurmCli:
    """Runs Slurm commands. ``bin_dir`` locates the commands (else ``PATH``); ``slurm_conf`` selects the
    cluster (else the inherited ``SLURM_CONF`` or Slurm's default)."""

    def __init__(self, bin_dir: str | None = None, slurm_conf: str | None = None, timeout_s: float = 30.0):
        self.bin_dir = bin_dir
        self.slurm_conf = slurm_conf
        self.timeout_s = timeout_s

    def base_env(self) -> dict[str, str]:
        """The environment every command runs with: the caller's plus the fixed time format."""
        env = dict(os.environ)
        env["SLURM_TIME_FORMAT"] = "%s"
        if self.slurm_conf:
            env["SLURM_CONF"] = self.slurm_conf
        return env

    def run(
        self,
        args: Sequence[str],
        *,
        stdin: str | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> str:
        """Run one command and return its stdout. ``env`` replaces the default environment entirely
        (sbatch uses that to give the job exactly the variables it should see)."""
        program = str(Path(self.bin_dir) / args[0]) if self.bin_dir else args[0]
        argv = [program, *args[1:]]
        try:
            done = subprocess.run(
                argv,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                env=dict(env) if env is not None else self.base_env(),
                check=False,
            )
        except FileNotFoundError:
            raise SlurmCommandError(f"{args[0]}: command not found (Slurm client not installed?)") from None
        except subprocess.TimeoutExpired:
            raise SlurmTimeoutError(f"{args[0]}: no answer within {self.timeout_s:g} s") from None
        if check and done.returncode != 0:
            raise SlurmCommandError(f"{args[0]} failed (exit {done.returncode}): {_one_line(done.stderr)}")
        return done.stdout
