"""What the local backend knows of its runs from the operating system and the disk: a process by pid and
start time (``/proc``, which survives pid reuse), its process group, and the JSON records in a job's
directory (written atomically, mode 0600). Kept apart from ``LocalBackend`` so the launch and watch
logic reads as decisions, not file handling."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time in clock ticks) of a process, or ``None`` if it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def alive(pid: int, start_ticks: int) -> bool:
    stat = proc_stat(pid)
    return stat is not None and stat[1] == start_ticks and stat[0] not in ("Z", "X")


def killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def parse_ref(ref: str) -> tuple[int, int] | None:
    try:
        pid, ticks = ref.split(":")
        return int(pid), int(ticks)
    except ValueError:
        return None


def write_json(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def claimed_ref(claim: dict[str, object]) -> str:
    """The wrapper's reference in its claim, ``""`` for none (no claim, or an abandoned one)."""
    pid, ticks = int_or_none(claim.get("pid")), int_or_none(claim.get("start_ticks"))
    return f"{pid}:{ticks}" if pid is not None and ticks is not None else ""
