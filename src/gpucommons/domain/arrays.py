"""Job arrays (design note 0011): the ``--array`` spec, a task's ``ARRAY_TASK`` reference, and the
environment a task runs with.

The spec is Slurm's: ``INDEXES[%N]``, where ``INDEXES`` is a comma-separated list of ``A``, ``A-B``
and ``A-B:S`` (every ``S``-th index from ``A`` up to ``B``) and ``%N`` the most tasks that may run at
once. Parts that overlap are merged, as Slurm's bitmap merges them; tasks are numbered in ascending
order. The size is computed from the ranges before any index is listed, so an absurd range is refused
without building it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise

from gpucommons.errors import InvalidRequestError

MAX_TASK_INDEX = 2**31 - 1  # an index is stored in a 32-bit column on PostgreSQL
MAX_SPEC_CHARS = 200

_PART = re.compile(r"(\d{1,10})(?:-(\d{1,10})(?::(\d{1,10}))?)?")
_LIMIT = re.compile(r"(.*?)%(\d{1,10})")
_HELP = "use e.g. 0-999, 1,3,5-7 or 0-15:4, with an optional %N limit"


@dataclass(frozen=True)
class ArraySpec:
    """A parsed spec: ``text`` as written (without surrounding blanks), the task indexes in ascending
    order, and ``max_running`` (``None``: no limit)."""

    text: str
    task_ids: tuple[int, ...]
    max_running: int | None

    @property
    def task_count(self) -> int:
        return len(self.task_ids)


def _part_range(part: str, text: str) -> range:
    match = _PART.fullmatch(part)
    if match is None:
        raise InvalidRequestError(f"malformed array spec {text!r}; {_HELP}")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) is not None else first
    step = int(match.group(3)) if match.group(3) is not None else 1
    if last > MAX_TASK_INDEX:
        raise InvalidRequestError(f"array index {last} is above the largest, {MAX_TASK_INDEX}")
    if last < first:
        raise InvalidRequestError(f"array range {part} ends before it starts")
    if step < 1:
        raise InvalidRequestError(f"array step in {part} must be at least 1")
    return range(first, last + 1, step)


def parse_array_spec(text: str, max_tasks: int) -> ArraySpec:
    """The spec ``text``, or ``InvalidRequestError`` naming what is wrong: malformed text, a range that
    ends before it starts, a step or limit of 0, an index past ``MAX_TASK_INDEX``, or more than
    ``max_tasks`` tasks."""
    spec = text.strip()
    if not spec or len(spec) > MAX_SPEC_CHARS:
        raise InvalidRequestError(f"malformed array spec {text!r}; {_HELP}")
    indexes, max_running = spec, None
    limited = _LIMIT.fullmatch(spec)
    if limited is not None:
        indexes, max_running = limited.group(1), int(limited.group(2))
        if max_running < 1:
            raise InvalidRequestError(f"array limit %{limited.group(2)} must be at least 1")
    ranges = [_part_range(part, text) for part in indexes.split(",")]
    return ArraySpec(spec, _task_ids(ranges, spec, max_tasks), max_running)


def _task_ids(ranges: list[range], spec: str, max_tasks: int) -> tuple[int, ...]:
    """The distinct indexes of ``ranges`` in ascending order; refused past ``max_tasks`` before more
    than about that many are listed (one huge range, or many overlapping ones)."""
    ordered = sorted(ranges, key=lambda r: r.start)
    if all(a[-1] < b.start for a, b in pairwise(ordered)):  # disjoint, the usual case: count first
        count = sum(len(r) for r in ordered)
        if count > max_tasks:
            raise InvalidRequestError(
                f"array {spec!r} has {count} tasks, more than the maximum of {max_tasks}"
            )
        return tuple(i for r in ordered for i in r)
    seen: set[int] = set()
    for r in ordered:
        if len(r) <= max_tasks:
            seen.update(r)
        if len(r) > max_tasks or len(seen) > max_tasks:
            raise InvalidRequestError(f"array {spec!r} has more tasks than the maximum of {max_tasks}")
    return tuple(sorted(seen))


def parse_job_ref(text: str) -> tuple[int, int | None]:
    """``"40"`` -> ``(40, None)`` (a job, or the array with that id); ``"40_7"`` -> ``(40, 7)`` (task 7
    of array 40, Slurm's ``ARRAY_TASK`` notation)."""
    match = re.fullmatch(r"(\d{1,10})(?:_(\d{1,10}))?", text.strip())
    if match is None or not 1 <= int(match.group(1)) <= MAX_TASK_INDEX:
        raise InvalidRequestError(f"malformed job reference {text!r}; give a job id (40) or a task (40_7)")
    task = match.group(2)
    return int(match.group(1)), (int(task) if task is not None else None)


def task_ref(array_id: int, task_id: int) -> str:
    """A task's reference, ``40_7``."""
    return f"{array_id}_{task_id}"


def folded_ref(array_id: int, spec: str) -> str:
    """An array as one line of the queue, Slurm's ``40_[0-999%50]``."""
    return f"{array_id}_[{spec}]"


@dataclass(frozen=True)
class ArrayTask:
    """Which task of which array a job is, with what a task's script reads of its array."""

    array_id: int
    task_id: int
    task_count: int
    task_min: int
    task_max: int

    def environment(self) -> dict[str, str]:
        """The variables the task runs with: ours, and those a script written for a Slurm array reads
        to pick its share of the work (never ones that say the job runs inside a Slurm allocation)."""
        return {
            "GPUC_ARRAY_JOB_ID": str(self.array_id),
            "GPUC_ARRAY_TASK_ID": str(self.task_id),
            "GPUC_ARRAY_TASK_COUNT": str(self.task_count),
            "SLURM_ARRAY_JOB_ID": str(self.array_id),
            "SLURM_ARRAY_TASK_ID": str(self.task_id),
            "SLURM_ARRAY_TASK_COUNT": str(self.task_count),
            "SLURM_ARRAY_TASK_MIN": str(self.task_min),
            "SLURM_ARRAY_TASK_MAX": str(self.task_max),
        }
