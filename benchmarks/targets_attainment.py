"""How long declared targets take to judge (design note 0014), beside the usage report they read.

    .venv/bin/python benchmarks/targets_attainment.py --database-url postgresql+psycopg://USER@HOST/EMPTY_DB
    .venv/bin/python benchmarks/targets_attainment.py --segments 200000     # SQLite, in a temporary file

The database must be empty: it is filled as ``reports_1m.py`` fills it (segments of jobs over 40
projects of 8 institutions, spread over a year, a third charged to four programs), each job then ended
at its last segment's end. Eight targets are declared: shares by kind and region, one within a
program, a floor, and waits by kind. Printed, median of three runs each: the baseline, the usage
report a share reads (a month by kind, as ``reports_1m.py`` times it), then every target over a
month, and one ``/metrics`` collection of the target gauges (each target's closed and current month).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from gpucommons.service.targetmetrics import TargetCollector
from gpucommons.store import reports
from gpucommons.store.attainment import attainments
from gpucommons.store.base import make_engine, session_factory
from gpucommons.store.calls import ProgramRow
from gpucommons.store.jobs import JobRow
from gpucommons.store.targets import TargetSpec, create_target
from gpucommons.store.usage import UsageRow
from reports_1m import fill  # the sibling script's data

DECLARED = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 4, 10, tzinfo=UTC)  # March closed, April under way


def declare(url: str) -> None:
    """End every job at its last segment's end and declare the eight targets."""
    engine = make_engine(url)
    with session_factory(engine)() as s:
        last = (
            select(UsageRow.job_id, func.max(UsageRow.ended_at).label("ended_at"))
            .group_by(UsageRow.job_id)
            .subquery()
        )
        s.execute(update(JobRow).values(ended_at=last.c.ended_at).where(JobRow.id == last.c.job_id))
        program = s.scalar(select(ProgramRow.id).order_by(ProgramRow.id))
        for spec in (
            TargetSpec("startups", "share", "kind", "startup", 15.0),
            TargetSpec("outside-capital", "share", "region", "non_capital", 30.0),
            TargetSpec("universities", "share", "kind", "university", 20.0),
            TargetSpec("smes-in-call", "share", "kind", "sme", 10.0, program_id=program),
            TargetSpec("capital-floor", "gpu_hours", "region", "capital", 5_000.0),
            TargetSpec("academia-wait", "wait", "kind", "university", 24.0),
            TargetSpec("startup-wait", "wait", "kind", "startup", 12.0, percentile=50),
            TargetSpec("region-wait", "wait", "region", "capital", 48.0),
        ):
            create_target(s, spec, DECLARED)
        s.commit()
    engine.dispose()


def median_s(url: str, work: Callable[[Session], object]) -> float:
    engine = make_engine(url)
    sessions = session_factory(engine)
    times = []
    for _ in range(3):
        with sessions() as s:
            started = time.perf_counter()
            work(s)
            times.append(time.perf_counter() - started)
    engine.dispose()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default="", help="an empty database (default: a SQLite file)")
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--jobs", type=int, default=100_000)
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{Path(tempfile.mkdtemp()) / 'targets.db'}"
    started = time.perf_counter()
    fill(url, args.segments, args.jobs)
    declare(url)
    print(
        f"{args.segments:,} segments of {args.jobs:,} jobs, 8 targets ({time.perf_counter() - started:.0f} s)"
    )
    march = reports.parse_period("2026-03")
    december = reports.parse_period("2026-12")
    engine = make_engine(url)
    collector = TargetCollector(session_factory(engine), lambda: NOW)
    rows: list[tuple[str, Callable[[Session], object]]] = [
        ("baseline: usage by kind, 2026-03", lambda s: reports.usage_report(s, "kind", march, None)),
        ("8 targets, 2026-03", lambda s: attainments(s, march, NOW)),
        ("8 targets, 2026-12", lambda s: attainments(s, december, NOW)),
        ("/metrics target gauges (2 windows)", lambda s: list(collector.collect())),
    ]
    print(f"{'what':<38} {'median s':>9}")
    for label, work in rows:
        print(f"{label:<38} {median_s(url, work):>9.3f}")
    engine.dispose()


if __name__ == "__main__":
    main()
