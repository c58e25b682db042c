"""The local backend's records of a job's runs, in the job's directory ``<state_dir>/<job_id>/``, and
the in-memory ``Tracked`` run it builds from them.

Next to the wrapper's files (``meta.json``, ``claim``, ``exit_code``; ``backends.wrapper``):

- ``reported``: the end of the recorded run is in the commons' records. It is written when the engine
  acknowledges the event (``AcknowledgesEvents``), never when the event is only sent: a server that
  dies between sending and committing leaves it unwritten, and the next ``adopt`` reports the end again;
- ``late_ends.json``: ends of earlier runs of the job that were not yet acknowledged when the job's
  next run replaced their record (a preempted run that exited, or was killed, as the job started
  again). The segment such a run belonged to is charged up to that end, so the end must survive a
  crash until the commons has it; ``adopt`` reports every one still listed;
- ``stop.json``: the recorded run was told to stop (``StopRecord``, written before the signal), and
  when its grace period ends: a restarted server keeps that stop (``backends.local_stops``).

``unwatched_runs`` reads these records for what no server watches: those late ends, runs that ended
unseen, and live processes of jobs the commons no longer counts as running.
"""

from __future__ import annotations

import contextlib
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gpucommons.backends.processes import alive, claimed_ref, int_or_none, parse_ref, read_json, write_json
from gpucommons.backends.wrapper import CLAIM_FILE, EXIT_FILE, META_FILE
from gpucommons.engine.ports import BackendEvent

REPORTED_FILE = "reported"
STOP_FILE = "stop.json"
LATE_ENDS_FILE = "late_ends.json"
END_KINDS = frozenset({"finished", "failed", "cancelled", "timeout", "lost"})


@dataclass
class Tracked:
    """A run this backend instance watches: launched by it, or adopted from its record."""

    job_id: int
    ref: str
    pid: int
    start_ticks: int
    deadline_s: float
    job_dir: Path
    uid: int | None = None
    workdir: Path | None = None
    popen: subprocess.Popen[bytes] | None = None
    stopping: str = ""  # "", "cancelled" or "timeout"
    term_sent_s: float = 0.0
    kill_at_s: float = math.inf  # once stopping: when its grace period ends and it is killed
    killed: bool = False  # SIGKILL sent
    signalled_s: float | None = None  # stopping because preempted: when the signal went
    checkpoint_seen_s: float = 0.0  # its checkpoint file's last reported modification time
    devices: frozenset[str] = frozenset()  # "<node>:<gpu>" it holds, as in the launch record
    launched_s: float | None = None  # when its process started, until ``poll`` has reported it


@dataclass(frozen=True)
class StopRecord:
    """A run told to stop: which (``ref``), why (``cancelled`` or ``timeout``, the kind of its end),
    when the signal went, when it is killed, and whether a preemption stopped it."""

    ref: str
    why: str
    signalled_s: float
    kill_at_s: float
    preempted: bool


def save_stop(job_dir: Path, stop: StopRecord) -> None:
    record: dict[str, object] = {
        "ref": stop.ref,
        "why": stop.why,
        "signalled_s": stop.signalled_s,
        "kill_at_s": stop.kill_at_s,
        "preempted": stop.preempted,
    }
    write_json(job_dir / STOP_FILE, record)


def read_stop(job_dir: Path, ref: str) -> StopRecord | None:
    """The stop recorded for the run ``ref`` (``None``: it was never told to stop)."""
    data = read_json(job_dir / STOP_FILE)
    why, signalled, kill_at = data.get("why"), data.get("signalled_s"), data.get("kill_at_s")
    if data.get("ref") != ref or why not in ("cancelled", "timeout"):
        return None
    if not isinstance(signalled, int | float) or not isinstance(kill_at, int | float):
        return None
    return StopRecord(ref, str(why), float(signalled), float(kill_at), data.get("preempted") is True)


def preempted_at_s(job_dir: Path, ref: str) -> float | None:
    """When the run ``ref`` was signalled by a preemption (``None``: it was not)."""
    stop = read_stop(job_dir, ref)
    return stop.signalled_s if stop is not None and stop.preempted else None


def read_meta(job_dir: Path) -> dict[str, object]:
    return read_json(job_dir / META_FILE)


def recorded_ref(job_dir: Path, meta: dict[str, object] | None = None) -> str:
    """The recorded launch's process: the wrapper's claim, else the reference saved after the start."""
    claimed = claimed_ref(read_json(job_dir / CLAIM_FILE))
    return claimed or str((read_meta(job_dir) if meta is None else meta).get("ref", ""))


def exit_code(job_dir: Path, now: float) -> tuple[int | None, float]:
    """The recorded run's exit code and when the wrapper wrote it; ``(None, now)`` when it did not."""
    path = job_dir / EXIT_FILE
    try:
        return int(path.read_text().strip()), path.stat().st_mtime
    except (OSError, ValueError):
        return None, now


def tracked_from_record(job_dir: Path, job_id: int, ref: str, parsed: tuple[int, int]) -> Tracked:
    """A run this instance did not launch, rebuilt from its launch record; its ``launched_s`` is the
    recorded launch time, for a server that died before it reported the start. A run told to stop
    keeps the stop recorded for it (``local_stops``): it is killed when that grace period ends."""
    meta = read_meta(job_dir)
    deadline = meta.get("deadline_s")
    recorded = meta.get("workdir")
    devices = meta.get("devices")
    launched = meta.get("launched_s")
    tracked = Tracked(
        job_id,
        ref,
        parsed[0],
        parsed[1],
        float(deadline) if isinstance(deadline, int | float) else float("inf"),
        job_dir,
        uid=int_or_none(meta.get("uid")),
        workdir=Path(recorded) if isinstance(recorded, str) and recorded else None,
        devices=frozenset(d for d in devices if isinstance(d, str))
        if isinstance(devices, list)
        else frozenset(),
        launched_s=float(launched) if isinstance(launched, int | float) else None,
    )
    stop = read_stop(job_dir, ref)
    if stop is not None:
        tracked.stopping, tracked.term_sent_s, tracked.kill_at_s = stop.why, stop.signalled_s, stop.kill_at_s
        tracked.signalled_s = stop.signalled_s if stop.preempted else None
    return tracked


def reported(job_dir: Path) -> bool:
    return (job_dir / REPORTED_FILE).exists()


def save_late_end(job_dir: Path, event: BackendEvent) -> None:
    """Keep the end of a run whose record the job's next run is about to replace."""
    ends = read_json(job_dir / LATE_ENDS_FILE).get("ends")
    kept = [e for e in ends if isinstance(e, dict)] if isinstance(ends, list) else []
    entry = {
        "kind": event.kind,
        "at_s": event.at_s,
        "ref": event.backend_ref,
        "exit_code": event.exit_code,
        "signalled_s": event.signalled_s,
    }
    write_json(job_dir / LATE_ENDS_FILE, {"ends": [*kept, entry]})


def late_ends(job_dir: Path, job_id: int) -> list[BackendEvent]:
    """The ends kept by ``save_late_end`` and not yet acknowledged."""
    ends = read_json(job_dir / LATE_ENDS_FILE).get("ends")
    events = []
    for entry in ends if isinstance(ends, list) else []:
        if not isinstance(entry, dict):
            continue
        kind, at_s, ref = entry.get("kind"), entry.get("at_s"), entry.get("ref")
        signalled = entry.get("signalled_s")
        if kind in END_KINDS and isinstance(at_s, int | float) and isinstance(ref, str) and ref:
            code = int_or_none(entry.get("exit_code"))
            at_signal = float(signalled) if isinstance(signalled, int | float) else None
            events.append(BackendEvent(job_id, str(kind), float(at_s), ref, code, signalled_s=at_signal))
    return events


def acknowledge_end(job_dir: Path, ref: str) -> None:
    """The end of the run ``ref`` is in the commons' records: mark it reported, wherever it is kept."""
    if recorded_ref(job_dir) == ref:
        with contextlib.suppress(OSError):  # no directory: nothing left to report
            (job_dir / REPORTED_FILE).touch()
    path = job_dir / LATE_ENDS_FILE
    if not path.exists():
        return
    ends = read_json(path).get("ends")
    kept = [e for e in ends if isinstance(e, dict) and e.get("ref") != ref] if isinstance(ends, list) else []
    if kept:
        write_json(path, {"ends": kept})
    else:
        path.unlink(missing_ok=True)


def end_kind(code: int | None) -> str:
    """How a run ended, by its wrapper's exit code (``None``: it was killed before it could say)."""
    return "cancelled" if code is None else "finished" if code == 0 else "failed"


def unwatched_runs(state_dir: Path, known: set[int], now: float) -> list[BackendEvent]:
    """What no server watches: the ends of earlier runs not yet acknowledged (``late_ends``), the ends
    of runs of jobs the caller no longer counts as running that exited while no server watched them
    (a preempted run told to stop by a server that died before it saw the run go), and the live
    processes of such jobs (``unknown``, with the job id: cancelling one then reports its end, which
    charges the segment it belonged to up to when it really stopped)."""
    events = []
    for job_dir in sorted(state_dir.iterdir()):
        if not job_dir.name.isdigit():
            continue
        job_id = int(job_dir.name)
        events.extend(late_ends(job_dir, job_id))
        if job_id in known:
            continue
        parsed = parse_ref(recorded_ref(job_dir))
        if parsed is None:
            continue
        ref = f"{parsed[0]}:{parsed[1]}"
        if alive(*parsed):
            events.append(BackendEvent(job_id, "unknown", now, ref, None, f"job {job_dir.name}"))
        elif not reported(job_dir):
            code, ended_s = exit_code(job_dir, now)
            if code is not None:
                at_signal = preempted_at_s(job_dir, ref)
                events.append(BackendEvent(job_id, end_kind(code), ended_s, ref, code, signalled_s=at_signal))
    return events
