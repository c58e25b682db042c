"""Reader for the Philly job trace (``philly-derived/philly.csv``, Pollux/Sia artifact format).

Columns ``timestamp,duration,num_gpus,gpu_time,cluster``. Tenants are the ``cluster`` column (Philly's
virtual clusters). Submit times become seconds after the earliest submit; job ids are 1-based row
numbers; ``limit_jobs`` keeps the earliest-submitted jobs (ties in file order). The trace has no user
estimates, so ``estimate_s`` is the true duration (an oracle estimate; backfill results are therefore an
upper bound on what real estimates give).
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

from gpucommons.domain.job import Job
from gpucommons.errors import TraceError

COLUMNS = ("timestamp", "duration", "num_gpus", "gpu_time", "cluster")


def read_philly(path: Path, limit_jobs: int | None = None) -> list[Job]:
    try:
        handle = path.open(newline="")
    except OSError as exc:
        raise TraceError(f"cannot read trace {path}: {exc.strerror}") from None
    rows: list[tuple[float, float, int, str]] = []
    with handle:
        reader = csv.DictReader(handle)
        try:
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise TraceError(f"{path}: missing column(s) {', '.join(missing)}")
            for line, row in enumerate(reader, start=2):
                rows.append(_parse_row(path, line, row))
        except UnicodeDecodeError as exc:
            raise TraceError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    order = sorted(range(len(rows)), key=lambda i: (rows[i][0], i))[:limit_jobs]
    if not order:
        return []
    t0 = rows[order[0]][0]
    jobs = []
    for i in order:
        ts, duration, gpus, tenant = rows[i]
        jobs.append(
            Job(
                id=i + 1, tenant=tenant, gpus=gpus, submit_s=ts - t0, duration_s=duration, estimate_s=duration
            )
        )
    return jobs


def _parse_row(path: Path, line: int, row: dict[str, str]) -> tuple[float, float, int, str]:
    try:
        ts = datetime.fromisoformat(row["timestamp"]).replace(tzinfo=UTC).timestamp()
        duration = float(row["duration"])
        gpus = int(float(row["num_gpus"]))
    except (ValueError, TypeError) as exc:
        raise TraceError(f"{path}:{line}: malformed row ({exc})") from None
    tenant = (row.get("cluster") or "").strip()
    if duration <= 0 or gpus <= 0 or not tenant:
        raise TraceError(f"{path}:{line}: malformed row (need duration > 0, num_gpus > 0 and a cluster)")
    return ts, duration, gpus, tenant
