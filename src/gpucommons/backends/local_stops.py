"""How the local backend stops a run gracefully (design note 0016, "In the live service").

A run told to stop (a preemption with its own grace period; a cancel or its time limit with the
backend's) gets SIGTERM to its process group now and SIGKILL once the grace period is over, at the
backend's first look after (the engine steps then: ``next_deadline_s``). The stop is written to
``stop.json`` in the job's directory *before* the signal goes (``local_records.StopRecord``): a server
that dies during the grace period leaves the record, and the next one, adopting the run or finding it
still alive, kills it when the recorded period ends instead of signalling it again or granting a new
one. A preempted run's end carries when it was signalled (``BackendEvent.signalled_s``), for its
grace period is not charged. A launch never waits for a stopping run (``vacate``), and each poll
reports a run's checkpoint file as it changes (``new_checkpoint``).
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterable

from gpucommons.backends.checkpoints import checkpoint_event, checkpoint_mtime_s
from gpucommons.backends.local_records import StopRecord, Tracked, save_stop
from gpucommons.backends.processes import alive, killpg
from gpucommons.engine.ports import BackendEvent, LaunchDeferredError
from gpucommons.errors import GpucError

VACATE_POLL_S = 0.05  # how long a launch gives a run it just killed to go before deferring
UNKILLABLE_S = 10.0  # past the grace period, how long a killed run may take to go before launch fails


class DevicesBusyError(GpucError):
    """A launch found its GPUs still held by a run that would not end; the engine retries it later."""


def stop(tracked: Tracked, why: str, grace_s: float, now: float, *, preempted: bool = False) -> None:
    """SIGTERM to the run's group, recorded first with when its grace period ends."""
    tracked.stopping, tracked.term_sent_s, tracked.kill_at_s = why, now, now + max(0.0, grace_s)
    tracked.signalled_s = now if preempted else None
    save_stop(tracked.job_dir, StopRecord(tracked.ref, why, now, tracked.kill_at_s, preempted))
    killpg(tracked.pid, signal.SIGTERM)


def kill(tracked: Tracked) -> None:
    tracked.killed = True
    killpg(tracked.pid, signal.SIGKILL)


def is_alive(tracked: Tracked) -> bool:
    if tracked.popen is not None:
        return tracked.popen.poll() is None
    return alive(tracked.pid, tracked.start_ticks)


def next_deadline_s(runs: Iterable[Tracked]) -> float | None:
    """When the first stopping run not yet killed reaches the end of its grace period."""
    return min((t.kill_at_s for t in runs if t.stopping and not t.killed), default=None)


def vacate(runs: Iterable[Tracked], job_id: int, devices: frozenset[str], now: float) -> None:
    """Refuse, for now, a launch of ``job_id`` on ``devices`` that a stopping run stands in the way
    of: one holding any of those GPUs (the scheduler frees a cancelled or preempted job's GPUs when it
    decides, but its processes may take their grace period to exit, and two jobs must never hold one
    GPU at once), or the job's own earlier run (writing its checkpoint where the new run will look).
    ``LaunchDeferredError`` while it may still stop; past its grace period it is killed here, and one
    that SIGKILL cannot end (stuck I/O) makes the launch fail after ``UNKILLABLE_S`` more."""
    for tracked in list(runs):
        in_the_way = tracked.job_id == job_id or bool(tracked.devices & devices)
        if not tracked.stopping or not in_the_way or not is_alive(tracked):
            continue
        held = ", ".join(sorted(tracked.devices & devices))
        if now >= tracked.kill_at_s:
            kill(tracked)
            if tracked.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    tracked.popen.wait(VACATE_POLL_S)
            if not is_alive(tracked):
                continue
            if now >= tracked.kill_at_s + UNKILLABLE_S:
                raise DevicesBusyError(
                    f"GPUs {held or 'of its own run'} still held by job {tracked.job_id}, "
                    f"{now - tracked.term_sent_s:.0f} s after it was told to stop"
                )
        raise LaunchDeferredError(
            f"{held or 'its working directory'} still held by job {tracked.job_id}'s stopping run "
            f"for at most {max(0.0, tracked.kill_at_s - now):.1f} s"
        )


def new_checkpoint(tracked: Tracked, now: float) -> list[BackendEvent]:
    """A ``checkpoint`` event when the run's checkpoint file changed since the last poll."""
    mtime_s = checkpoint_mtime_s(tracked.workdir, tracked.job_id)
    event = checkpoint_event(tracked.job_id, tracked.ref, mtime_s, tracked.checkpoint_seen_s, now)
    if event is None:
        return []
    tracked.checkpoint_seen_s = mtime_s
    return [event]
