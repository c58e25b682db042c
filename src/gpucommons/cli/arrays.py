"""What the job commands print and resolve for job arrays (design note 0011).

A job reference on the command line is a job id (``41``) or Slurm's ``ARRAY_TASK`` (``40_7``: task 7
of array 40). An id that is an array's own id (the job id of its first task) means the whole array, as
``scancel 40`` does; ``40_<first index>`` names that first task alone.
"""

from __future__ import annotations

from rich.console import Console

from gpucommons.client import GpucClient
from gpucommons.domain.arrays import folded_ref, parse_job_ref, task_ref
from gpucommons.service.schemas.arrays import ArrayRead, ArrayWhyRead
from gpucommons.service.schemas.jobs import JobRead, WhyRead

STATE_ORDER = ("running", "pending", "finished", "failed", "cancelled", "timeout", "lost")


def resolve(client: GpucClient, ref: str) -> JobRead | ArrayRead:
    """The job ``ref`` names, or the array when it names a whole one; a malformed reference, or one
    the server does not know, is the usual one-line error."""
    job_id, task = parse_job_ref(ref)
    if task is not None:
        return client.array_task(job_id, task)
    job = client.get_job(job_id)
    return client.get_array(job.id) if job.array_id == job.id else job


def job_ref(job: JobRead) -> str:
    """How a job is named on the command line: ``41``, or ``40_7`` for a task."""
    if job.array_id is not None and job.array_task_id is not None:
        return task_ref(job.array_id, job.array_task_id)
    return str(job.id)


def counts(array: ArrayRead) -> str:
    """``3 running, 9 pending``: its tasks per state, the active ones first."""
    order = {s: i for i, s in enumerate(STATE_ORDER)}
    ordered = sorted(array.states.items(), key=lambda kv: order.get(kv[0], len(order)))
    return ", ".join(f"{n} {state}" for state, n in ordered)


def queue_rows(jobs: list[JobRead], arrays: list[ArrayRead]) -> list[tuple[str, ...]]:
    """The queue's rows in line order: each plain job, and each array folded to one line."""
    lines: list[tuple[object, int, tuple[str, ...]]] = []
    for j in jobs:
        where = ", ".join(j.assigned_gpus) if j.state == "running" else j.reason
        lines.append((j.submitted_at, j.id, (job_ref(j), j.project, j.name, str(j.gpus), j.state, where)))
    for a in arrays:
        row = (folded_ref(a.id, a.spec), a.project, a.name, str(a.gpus), counts(a), a.reason)
        lines.append((a.submitted_at, a.id, row))
    lines.sort(key=lambda line: (line[0], line[1]))
    return [row for _, _, row in lines]


def print_why(out: Console, w: WhyRead, label: str) -> None:
    """One job's wait: its reason with the rule's figures, place in line, estimated start, remedy."""
    out.print(f"{label} is {w.state}: {w.code} - {w.detail}", markup=False)
    if w.model:
        pace = (
            f", x{w.speed:.2f} the speed of the reference {w.reference_model}" if w.speed is not None else ""
        )
        out.print(f"runs on: {w.model}{pace}", markup=False)
    if w.position is not None:
        out.print(f"position in line: {w.position}")
    if w.estimated_start_at is not None:
        out.print(f"estimated start: {w.estimated_start_at.isoformat(timespec='seconds')}")
    out.print(f"would unblock it: {w.unblock}", markup=False)


def print_array_why(out: Console, array: ArrayRead, w: ArrayWhyRead) -> None:
    limit = f", at most {w.max_running} running at once" if w.max_running is not None else ""
    out.print(f"array {array.id} ({array.spec}{limit}): {counts(array)}", markup=False)
    if w.why is None or w.next_task is None:
        out.print("no task of it is waiting")
        return
    print_why(out, w.why, f"its next task {task_ref(array.id, w.next_task)} (job {w.why.job_id})")
