"""Job commands: ``gpuc submit``, ``queue``, ``show``, ``why``, ``logs``, ``cancel`` and ``usage``.

They talk to the server through ``GpucClient`` with the credentials of ``GPUC_HOME`` (written by ``gpuc
login`` or ``gpuc up``); every server error arrives as a one-line ``GpucError``. ``submit --array``
submits a job array; ``show``, ``why``, ``logs`` and ``cancel`` take a job id or a task as
``ARRAY_TASK`` (``40_7``), and an array's own id means the whole array (``cli/arrays.py``).
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gpucommons.cli import arrays
from gpucommons.client import GpucClient
from gpucommons.config import Settings
from gpucommons.domain.arrays import task_ref
from gpucommons.errors import InvalidRequestError
from gpucommons.service.schemas.arrays import ArrayRead
from gpucommons.service.schemas.jobs import JobEventRead

TERMINAL = ("finished", "failed", "cancelled", "timeout", "lost")
FOLLOW_POLL_S = 1.0
JOB = "a job id, an array's id (the whole array), or one task of an array: ARRAY_TASK (40_7)"
out = Console(highlight=False, soft_wrap=True)


def _client() -> GpucClient:
    return GpucClient.from_env(Settings().home)


def _default_project(client: GpucClient) -> str:
    projects = client.list_projects()
    if len(projects) == 1:
        return projects[0].name
    names = ", ".join(p.name for p in projects) or "none"
    raise InvalidRequestError(f"say which project with --project (yours: {names})")


def submit(
    command: Annotated[list[str], typer.Argument(help="the command to run, after --")],
    gpus: Annotated[int, typer.Option(help="GPUs in total")] = 1,
    model: Annotated[list[str] | None, typer.Option("--model", help="accepted model (repeatable)")] = None,
    time_limit: Annotated[str, typer.Option("--time", help="time limit: 90s, 30m, 1h, 1:30:00")] = "1h",
    project: Annotated[str | None, typer.Option(envvar="GPUC_PROJECT", help="project name or id")] = None,
    gpus_per_node: Annotated[int | None, typer.Option(help="pin the gang shape")] = None,
    name: Annotated[str, typer.Option(help="a name for the job")] = "",
    priority: Annotated[str, typer.Option(help="low, normal or high")] = "normal",
    key: Annotated[str | None, typer.Option(help="idempotency key (default: a fresh one per call)")] = None,
    sovereign: Annotated[bool, typer.Option("--sovereign", help="run only on sovereign sites")] = False,
    job_class: Annotated[
        str,
        typer.Option("--class", help="kind of work: llm-pretrain, llm-finetune, vision or inference"),
    ] = "",
    array: Annotated[
        str | None,
        typer.Option(help="a job array, one task per index: 0-999, 1,3,5-7 or 0-15:4, with %N at most"),
    ] = None,
    lineage: Annotated[
        str, typer.Option(help="the model lineage it trains, for the training-compute ledger")
    ] = "",
    grace: Annotated[
        str,
        typer.Option(help="time to checkpoint and exit when preempted (30s, 2m); default: by priority class"),
    ] = "",
    checkpoint_every: Annotated[
        str, typer.Option("--checkpoint-every", help="how often it writes a checkpoint (30m)")
    ] = "",
) -> None:
    """Submit a job: gpuc submit --gpus 2 -- python train.py; or an array of them, each task with its
    own GPUC_ARRAY_TASK_ID: gpuc submit --array 0-99%10 -- python shard.py"""
    client = _client()
    fields = dict(
        project=project or _default_project(client),
        command=command,
        gpus=gpus,
        models=model or [],
        time_limit=time_limit,
        gpus_per_node=gpus_per_node,
        name=name,
        priority_class=priority,
        sovereign=sovereign,
        job_class=job_class,
        lineage=lineage,
        grace_period=grace,
        checkpoint_interval=checkpoint_every,
        idempotency_key=key or uuid.uuid4().hex,
        workdir=os.getcwd(),
    )
    if array is not None:
        a = client.submit_array(**fields, array=array)
        limit = f", at most {a.max_running} running" if a.max_running is not None else ""
        out.print(f"submitted array {a.id} of {a.task_count} tasks ({a.spec}{limit}) to project {a.project}")
        return
    job = client.submit_job(**fields)
    out.print(f"submitted job {job.id} ({job.state}) to project {job.project}")


def queue(
    all_jobs: Annotated[bool, typer.Option("--all", help="include ended jobs")] = False,
    project: Annotated[str | None, typer.Option(help="only this project")] = None,
    expand: Annotated[bool, typer.Option("--expand", help="list job arrays' tasks one by one")] = False,
) -> None:
    """Pending and running jobs of your projects, in line order; each job array on one line, with its
    tasks per state (--expand lists the tasks as ARRAY_TASK)."""
    client = _client()
    states = None if all_jobs else ["pending", "running"]
    jobs = client.list_jobs(states, project, limit=10_000, tasks=expand)
    folded = [] if expand else client.list_arrays(project, every=all_jobs, limit=10_000)
    table = Table("id", "project", "name", "gpus", "state", "where / why", box=None)
    for row in arrays.queue_rows(jobs, folded):
        table.add_row(*row)
    out.print(table)


def show(
    job: Annotated[str, typer.Argument(help=JOB)],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """Everything about one job and its history (each start with its GPUs, preemptions, requeues, its
    end), or one job array with its tasks per state."""
    client = _client()
    target = arrays.resolve(client, job)
    if as_json:
        print(target.model_dump_json(indent=2))
        return
    for field, value in target.model_dump().items():
        out.print(f"{field:>20}: {value}", markup=False)
    if not isinstance(target, ArrayRead):
        print_history(client.job_events(target.id))


def _by_why(event: JobEventRead) -> str:
    by = f"by job {event.by_job_id}" if event.by_job_id is not None else ""
    return ": ".join(part for part in (by, event.detail) if part)


def print_history(events: list[JobEventRead]) -> None:
    """A job's events, oldest first, as a table: time, event, run, GPUs, by whom and why. Plain
    columns, one line per event however long (a gang's GPUs), so the lines can be searched."""
    rows = [("time (UTC)", "event", "run", "GPUs", "by / why")]
    for e in events:
        when = e.at.strftime("%Y-%m-%d %H:%M:%S")
        rows.append((when, e.kind, str(e.run), ",".join(e.gpus or ()) or "-", _by_why(e)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    out.print("history:")
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        out.print("  " + "  ".join([*cells, row[4]]).rstrip(), markup=False)


def why(job: Annotated[str, typer.Argument(help=JOB)]) -> None:
    """Why a job waits, its place in line, when it should start, and what would unblock it. The code is
    the rule that holds it (a commons stage such as budget or power), the detail gives its figures.
    For a job array: its tasks per state and why its next task waits."""
    client = _client()
    target = arrays.resolve(client, job)
    if isinstance(target, ArrayRead):
        arrays.print_array_why(out, target, client.why_array(target.id))
        return
    task = f" (task {arrays.job_ref(target)})" if target.array_id is not None else ""
    arrays.print_why(out, client.why_job(target.id), f"job {target.id}{task}")


def logs(
    job: Annotated[str, typer.Argument(help="a job id, or one task of an array: ARRAY_TASK (40_7)")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the job ends")] = False,
    stderr: Annotated[bool, typer.Option("--stderr", help="the error stream instead")] = False,
) -> None:
    """A job's output (stdout, or stderr with --stderr)."""
    client = _client()
    target = arrays.resolve(client, job)
    if isinstance(target, ArrayRead):
        first = task_ref(target.id, target.task_min)
        raise InvalidRequestError(f"{target.id} is a job array; give one of its tasks, e.g. {first}")
    job_id = target.id
    offset = 0
    while True:
        chunk = client.job_logs(job_id, "stderr" if stderr else "stdout", offset)
        sys.stdout.write(chunk.text)
        sys.stdout.flush()
        offset = chunk.next_offset
        if not follow or (chunk.state in TERMINAL and not chunk.text):
            return
        if not chunk.text:
            time.sleep(FOLLOW_POLL_S)


def cancel(job: Annotated[str, typer.Argument(help=JOB)]) -> None:
    """Cancel a job (a running one is stopped: SIGTERM, then SIGKILL after a grace period), or every
    task of a job array that has not ended (gpuc cancel 40), or one task (gpuc cancel 40_7)."""
    client = _client()
    target = arrays.resolve(client, job)
    if isinstance(target, ArrayRead):
        done = client.cancel_array(target.id)
        stopping = done.states.get("running", 0)
        out.print(f"array {done.id}: {arrays.counts(done)}" + (f" ({stopping} stopping)" if stopping else ""))
        return
    cancelled = client.cancel_job(target.id)
    what = "stopping" if cancelled.state == "running" else cancelled.state
    out.print(f"job {arrays.job_ref(cancelled)}: {what}")


def usage(
    project: Annotated[str | None, typer.Option(help="only this project")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False,
) -> None:
    """Balances per project and award: GPU-hours, won, kWh, CO2 and training FLOPs."""
    rows = _client().usage(project)
    if as_json:
        print(json.dumps([r.model_dump() for r in rows], indent=2))
        return
    table = Table(
        "project", "award", "model", "GPU-h run", "budget used", "won", "kWh", "CO2 kg", "FLOPs", box=None
    )
    for r in rows:
        unit = " ref-h" if r.unit == "reference-hours" else " h"
        budget = (
            "-" if r.gpu_hours_budget is None else f"{r.gpu_hours_used:.4g} of {r.gpu_hours_budget:g}{unit}"
        )
        table.add_row(
            r.project,
            str(r.award_id or "-"),
            r.model or "-",
            f"{r.gpu_hours:.4f}",
            budget,
            f"{r.cost_krw:,}",
            f"{r.energy_kwh:.4f}",
            f"{r.co2_kg:.4f}",
            f"{r.flops:.3g}",
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add the job commands to the root ``gpuc`` app."""
    app.command("submit", context_settings={"allow_interspersed_args": False})(submit)
    for command in (queue, show, why, logs, cancel, usage):
        app.command(command.__name__)(command)
