"""The work a preemption would throw away now: what a checkpoint-aware preemptor minimises
(design note 0016).

A running job that is stopped restarts from its last checkpoint, so it loses the run time since then on
every device it holds: since ``RunningJob.last_checkpoint_s`` when it reported one in this run; else
since the last multiple of its declared ``checkpoint_interval_s`` after this run's start; else since
this run's start (a job that never checkpoints loses the whole run). ``lost_gpu_s`` is that time x its
GPUs, counted as attained service is (``job.gpus``: a shared GPU as one, a CPU-only job as nothing).

Victims are ranked by ``since_checkpoint_s``, the work lost per GPU freed: a preemptor frees GPUs
until a job fits, and taking the victims that lose the least per GPU first is the greedy answer to
"free this many GPUs losing the least work" (ranking by each victim's whole loss would prefer many
small jobs to one large job that has just checkpointed). The ``_columns`` forms apply the same rule
to the running jobs' NumPy columns, element by element, so a vectorized ranking agrees with the scalar.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gpucommons.policy.snapshot import RunningColumns, RunningJob


def seconds_since_checkpoint(
    started_s: float, last_checkpoint_s: float | None, interval_s: float | None, now: float
) -> float:
    """Run time since the last checkpoint a restart could resume from (see the module docstring)."""
    elapsed_s = max(0.0, now - started_s)
    if last_checkpoint_s is not None and last_checkpoint_s >= started_s:
        return min(elapsed_s, max(0.0, now - last_checkpoint_s))
    if interval_s is not None and interval_s > 0:
        return elapsed_s % interval_s
    return elapsed_s


def since_checkpoint_s(running: RunningJob, now: float) -> float:
    """The work a preemption of ``running`` at ``now`` would lose per GPU, in seconds."""
    return seconds_since_checkpoint(
        running.started_s, running.last_checkpoint_s, running.job.checkpoint_interval_s, now
    )


def lost_gpu_s(running: RunningJob, now: float) -> float:
    """GPU-seconds a preemption of ``running`` at ``now`` would lose."""
    return running.job.gpus * since_checkpoint_s(running, now)


def since_checkpoint_s_columns(columns: RunningColumns, now: float) -> npt.NDArray[np.float64]:
    """``since_checkpoint_s`` of every row of ``columns``, in row order."""
    started = columns.started_s()
    elapsed = np.maximum(0.0, now - started)
    interval = columns.checkpoint_interval_s()
    periodic = interval > 0
    since = np.where(periodic, np.fmod(elapsed, np.where(periodic, interval, 1.0)), elapsed)
    checkpoint = columns.last_checkpoint_s()
    reported = ~np.isnan(checkpoint) & (checkpoint >= started)
    result: npt.NDArray[np.float64] = np.where(
        reported, np.minimum(elapsed, np.maximum(0.0, now - checkpoint)), since
    )
    return result


def lost_gpu_s_columns(columns: RunningColumns, now: float) -> npt.NDArray[np.float64]:
    """``lost_gpu_s`` of every row of ``columns``, in row order."""
    result: npt.NDArray[np.float64] = columns.gpus() * since_checkpoint_s_columns(columns, now)
    return result
