"""A run's checkpoint file, as a backend that can read the run's working directory watches it (design
note 0016, "In the live service").

A run reports a checkpoint by touching ``GPUC_CHECKPOINT_FILE`` (``engine.ports.checkpoint_file``) in
its working directory. Each poll reads the file's own modification time (``lstat``: a link the job
planted is never followed) and reports a later one as a ``checkpoint`` event, no later than the poll
itself (a job can set any time on its file).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from gpucommons.engine.ports import BackendEvent, checkpoint_file


def checkpoint_mtime_s(workdir: Path | None, job_id: int) -> float:
    """The modification time of a run's checkpoint file (0: none, or unreadable)."""
    if workdir is None:
        return 0.0
    try:
        mtime = os.lstat(checkpoint_file(workdir, job_id)).st_mtime
    except OSError:
        return 0.0
    return mtime if math.isfinite(mtime) else 0.0


def checkpoint_event(job_id: int, ref: str, mtime_s: float, seen_s: float, now: float) -> BackendEvent | None:
    """A ``checkpoint`` event when the file changed since ``seen_s`` (0: never seen)."""
    if mtime_s <= seen_s:
        return None
    return BackendEvent(job_id, "checkpoint", min(mtime_s, now), ref)
