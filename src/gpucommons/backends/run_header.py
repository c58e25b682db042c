"""The line that opens each rerun of a job in its logs (design note 0017), the same on every backend.

A job keeps one ``stdout.log`` and one ``stderr.log`` over all its runs, appended to, so what an earlier
run wrote stays. When it runs again (after a preemption or a requeue) both logs first get

    === run 2 of job 17, started 2026-03-01T09:30:00Z on n3:0,n3:1 ===

so a reader, or a script, sees where the rerun starts. A first run gets none: the log of a job that
never reruns is exactly what its program wrote. The run number is the job's restarts + 1, which the
engine puts in the launch's environment (``GPUC_RESTART_COUNT``, which the job sees too). The local
backend writes the line at the launch; on Slurm the batch script prints it when the job really starts.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from datetime import UTC, datetime

from gpucommons.engine.ports import RESTART_COUNT_ENV, LaunchSpec

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
HEADER_FORMAT = "=== run %s of job %s, started %s on %s ===\n"  # printf's and Python's %


def run_number(env: Mapping[str, str]) -> int:
    """The run a launch starts: its restarts + 1 (1 when the environment does not say, or says
    nonsense)."""
    value = env.get(RESTART_COUNT_ENV, "")
    return int(value) + 1 if value.isascii() and value.isdigit() else 1


def gpu_names(spec: LaunchSpec) -> str:
    """The launch's GPUs as ``node:gpu``, comma-separated, in placement order."""
    return ",".join(
        f"{name}:{gpu}"
        for name, (_, gpus) in zip(spec.node_names, spec.placement.node_gpus, strict=True)
        for gpu in gpus
    )


def header(spec: LaunchSpec, started_s: float) -> str | None:
    """The line for a launch started at ``started_s`` (epoch seconds); ``None`` for a first run."""
    run = run_number(spec.env)
    if run < 2:
        return None
    started = datetime.fromtimestamp(started_s, UTC).strftime(TIME_FORMAT)
    return HEADER_FORMAT % (run, spec.job_id, started, gpu_names(spec))


def header_shell(spec: LaunchSpec) -> str:
    """Shell lines that print the header to stdout and stderr with the time they run at; empty for a
    first run. Every value is quoted: node names come from a site's configuration."""
    run = run_number(spec.env)
    if run < 2:
        return ""
    fmt = shlex.quote(HEADER_FORMAT.replace("\n", "\\n"))
    values = f'{run} {spec.job_id} "$gpuc_started" {shlex.quote(gpu_names(spec))}'
    return f"gpuc_started=$(date -u +{TIME_FORMAT})\nprintf {fmt} {values}\nprintf {fmt} {values} >&2\n"
