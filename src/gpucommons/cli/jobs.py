"""Job commands: ``gpuc submit``, ``queue``, ``show``, ``why``, ``logs``, ``cancel`` and ``usage``.

They talk to the server through ``GpucClient`` with the credentials of ``GPUC_HOME`` (written by ``gpuc
login`` or ``gpuc up``); every server error arrives as a one-line ``GpucError``.
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

from gpucommons.client import GpucClient
from gpucommons.config import Settings
from gpucommons.errors import InvalidRequestError

TERMINAL = ("finished", "failed", "cancelled", "timeout", "lost")
FOLLOW_POLL_S = 1.0
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
) -> None:
    """Submit a job: gpuc submit --gpus 2 -- python train.py"""
    client = _client()
    job = client.submit_job(
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
        idempotency_key=key or uuid.uuid4().hex,
        workdir=os.getcwd(),
    )
    out.print(f"submitted job {job.id} ({job.state}) to project {job.project}")


def queue(
    all_jobs: Annotated[bool, typer.Option("--all", help="include ended jobs")] = False,
    project: Annotated[str | None, typer.Option(help="only this project")] = None,
) -> None:
    """Pending and running jobs of your projects, in line order."""
    states = None if all_jobs else ["pending", "running"]
    jobs = _client().list_jobs(states, project, limit=10_000)
    table = Table("id", "project", "name", "gpus", "state", "where / why", box=None)
    for j in jobs:
        where = ", ".join(j.assigned_gpus) if j.state == "running" else j.reason
        table.add_row(str(j.id), j.project, j.name, str(j.gpus), j.state, where)
    out.print(table)


def show(
    job_id: int, as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False
) -> None:
    """Everything about one job."""
    job = _client().get_job(job_id)
    if as_json:
        print(job.model_dump_json(indent=2))
        return
    for field, value in job.model_dump().items():
        out.print(f"{field:>20}: {value}", markup=False)


def why(job_id: int) -> None:
    """Why a job waits, its place in line, when it should start, and what would unblock it. The code is
    the rule that holds it (a commons stage such as budget or power), the detail gives its figures."""
    w = _client().why_job(job_id)
    out.print(f"job {w.job_id} is {w.state}: {w.code} - {w.detail}", markup=False)
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


def logs(
    job_id: int,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the job ends")] = False,
    stderr: Annotated[bool, typer.Option("--stderr", help="the error stream instead")] = False,
) -> None:
    """A job's output (stdout, or stderr with --stderr)."""
    client = _client()
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


def cancel(job_id: int) -> None:
    """Cancel a job (a running one is stopped: SIGTERM, then SIGKILL after a grace period)."""
    job = _client().cancel_job(job_id)
    what = "stopping" if job.state == "running" else job.state
    out.print(f"job {job.id}: {what}")


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
