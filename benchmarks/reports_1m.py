"""How long a usage report takes over a million metered segments (design note 0010).

    .venv/bin/python benchmarks/reports_1m.py --database-url postgresql+psycopg://postgres@127.0.0.1:55432/x
    .venv/bin/python benchmarks/reports_1m.py                         # SQLite, in a temporary file

The database must be empty: the script migrates it, then writes ``--segments`` usage rows (default
1,000,000) of ``--jobs`` jobs over 40 projects of 8 institutions, spread over a year, a third charged to
one of four programs' awards, on three sites and three models. It then times each report the API
serves (``store.reports``), three runs each, median printed: the month by kind (the aggregate a
centre publishes), the year by project, by site and by program, and the year per month by kind (the time
series). Each job ends with its last segment, so the waits of the jobs that ended in the period are
part of every aggregate by a grouping a job has. Goal: under a second on PostgreSQL for the aggregate.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import bindparam, insert, update

from gpucommons.domain.institution import INSTITUTION_KINDS
from gpucommons.store import awards as award_repo
from gpucommons.store import reports
from gpucommons.store.base import make_engine, session_factory, upgrade
from gpucommons.store.calls import create_program
from gpucommons.store.jobs import JobRow
from gpucommons.store.tenancy import create_institution, create_project, create_user
from gpucommons.store.usage import UsageRow

YEAR_START = datetime(2026, 1, 1, tzinfo=UTC)
SITES = ("provider-1", "provider-2", "provider-3")
MODELS = ("H200", "B200", "H100")
BATCH = 20_000


def fill(url: str, segments: int, jobs: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions() as s:
        user = create_user(s, "bench", "admin")
        projects, awards = [], []
        for i in range(8):
            kind = INSTITUTION_KINDS[i % len(INSTITUTION_KINDS)]
            institution = create_institution(s, f"inst-{i}", kind, "capital" if i % 2 else "non_capital")
            projects += [create_project(s, f"p-{i}-{j}", institution.id).id for j in range(5)]
        for k in range(4):
            program = create_program(
                s, name=f"call-{k}", model="H200", capacity_gpus=10_000, duration_days=365
            )
            terms = award_repo.AwardTerms(project_id=projects[k], program_id=program.id, guaranteed_gpus=8)
            awards.append(award_repo.create_award(s, terms, YEAR_START).id)
        s.commit()
        user_id = user.id
    job_ids: list[int] = []
    with engine.begin() as conn:
        for start in range(0, jobs, BATCH):
            rows = [
                {
                    "project_id": projects[n % len(projects)],
                    "user_id": user_id,
                    "name": "bench",
                    "command": ["true"],
                    "gpus": 8,
                    "time_limit_s": 3600.0,
                    "submitted_at": YEAR_START,
                    "state": "finished",
                }
                for n in range(start, min(jobs, start + BATCH))
            ]
            job_ids += [r.id for r in conn.execute(insert(JobRow).returning(JobRow.id), rows)]
    span_s = 365 * 86_400
    last_end: dict[int, datetime] = {}
    segments_of: dict[int, int] = {}  # each an hour on 8 GPUs
    with engine.begin() as conn:
        for start in range(0, segments, BATCH):
            rows = []
            for n in range(start, min(segments, start + BATCH)):
                job = n % len(job_ids)
                ended = YEAR_START + timedelta(seconds=(n * 7919) % span_s)
                last_end[job_ids[job]] = max(ended, last_end.get(job_ids[job], ended))
                segments_of[job_ids[job]] = segments_of.get(job_ids[job], 0) + 1
                rows.append(
                    {
                        "job_id": job_ids[job],
                        "project_id": projects[job % len(projects)],
                        "award_id": awards[n % len(awards)] if n % 3 == 0 else None,
                        "started_at": ended - timedelta(hours=1),
                        "ended_at": ended,
                        "gpus": 8,
                        "model": MODELS[n % len(MODELS)],
                        "gpu_hours": 8.0,
                        "energy_kwh": 7.3,
                        "cost_krw": 16_000,
                        "co2_kg": 3.0,
                        "flops": 1e19,
                        "site": SITES[n % len(SITES)],
                    }
                )
            conn.execute(insert(UsageRow), rows)
    ends = [
        {"job": job_id, "ended": ended, "held": 8 * 3600.0 * segments_of[job_id]}
        for job_id, ended in last_end.items()
    ]
    with engine.begin() as conn:  # each job ended with its last segment, so the reports' waits count it
        statement = (
            update(JobRow)
            .where(JobRow.id == bindparam("job"))
            .values(ended_at=bindparam("ended"), attained_gpu_s=bindparam("held"))
        )
        for start in range(0, len(ends), BATCH):
            conn.execute(statement.execution_options(synchronize_session=False), ends[start : start + BATCH])
    engine.dispose()


def timed(url: str, by: str, period: str, every: str | None = None) -> tuple[float, int]:
    engine = make_engine(url)
    sessions = session_factory(engine)
    times = []
    lines = 0
    for _ in range(3):
        with sessions() as s:
            started = time.perf_counter()
            lines = len(reports.usage_report(s, by, reports.parse_period(period), None, every))
            times.append(time.perf_counter() - started)
    engine.dispose()
    return statistics.median(times), lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default="", help="an empty database (default: a SQLite file)")
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'reports.db'}"
    started = time.perf_counter()
    fill(url, args.segments, args.jobs)
    print(
        f"{args.segments:,} segments of {args.jobs:,} jobs written in {time.perf_counter() - started:.1f} s"
    )
    print(f"{'report':<34} {'median s':>9} {'lines':>6}")
    for label, by, period, every in (
        ("kind, 2026-03 (aggregate)", "kind", "2026-03", None),
        ("project, 2026", "project", "2026", None),
        ("site, 2026", "site", "2026", None),
        ("program, 2026", "program", "2026", None),
        ("kind, 2026 per month (series)", "kind", "2026", "month"),
    ):
        seconds, lines = timed(url, by, period, every)
        print(f"{label:<34} {seconds:>9.3f} {lines:>6}")


if __name__ == "__main__":
    main()
