"""Usage reports: the metered segments summed by a grouping over a period (design note 0010).

A report adds up the usage rows (one per run segment, ``store/usage.py``) that *ended* in the period,
grouped by one of ``GROUPINGS``, in one SQL ``GROUP BY``: GPU-hours, segments, distinct jobs, energy,
CO2, won and training FLOPs. A segment counts in the period it ended in, whole, as accounting systems
attribute a job to the period it finished in; a period is a day, an ISO week, a month, a quarter or a
year (``parse_period``), or all time. ``project_ids`` limits the report to those projects (``None``:
every project), which is how the API scopes it to a caller; ``program_id`` to the usage charged to
that program's awards (declared targets of a program, design note 0014).

``job_waits_h`` is the jobs-side figure: the wait of each job that ended in the period after running,
by group, for the wait targets of design note 0014; ``percentile`` ranks them.

The training-compute ledger, from the same segments, is ``store/compute.py``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import TypeVarTuple

from sqlalchemy import Integer, Label, Select, SQLColumnExpression, String, func, literal, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from gpucommons.errors import InvalidRequestError
from gpucommons.store.awards import AwardRow
from gpucommons.store.calls import ProgramRow
from gpucommons.store.jobs import ACTIVE_STATES, JOB_STATES, JobRow
from gpucommons.store.tenancy import InstitutionRow, ProjectRow
from gpucommons.store.usage import UsageRow

GROUPINGS = ("project", "institution", "kind", "region", "program", "site", "model")
WAIT_GROUPINGS = ("project", "institution", "kind", "region", "program")  # what a job row is grouped by
ENDED_STATES = tuple(state for state in JOB_STATES if state not in ACTIVE_STATES)
EVERY = ("day", "week", "month", "quarter", "year")
UNKNOWN = "(unknown)"  # a segment metered before its site was recorded
NO_AWARD = "(no award)"
_Ts = TypeVarTuple("_Ts")


@dataclass(frozen=True)
class Period:
    """``[start, end)`` in UTC, and how it was written."""

    label: str
    start: datetime | None
    end: datetime | None


@dataclass(frozen=True)
class UsageLine:
    """One group's (and bucket's) sums. ``wall_hours`` is the segments' time held, so ``mean_gpus``
    (GPU-hours over wall hours) is the job size weighted by time, ``max_gpus`` the largest segment.
    The waits are of the jobs that ended in the period having run (``job_waits_h``); in an aggregate
    by a grouping a job row has (``WAIT_GROUPINGS``), else ``None``."""

    group: str
    bucket: str  # the day, week, month, quarter or year of a time series ("" in an aggregate)
    gpu_hours: float
    segments: int
    jobs: int
    energy_kwh: float
    co2_kg: float
    cost_krw: int
    flops: float
    wall_hours: float = 0.0
    max_gpus: int = 0
    waited_jobs: int | None = None
    avg_wait_h: float | None = None
    p90_wait_h: float | None = None

    @property
    def mean_gpus(self) -> float:
        return self.gpu_hours / self.wall_hours if self.wall_hours > 0 else 0.0

    def with_waits(self, waits_h: Sequence[float]) -> UsageLine:
        if not waits_h:
            return replace(self, waited_jobs=0)
        average = sum(waits_h) / len(waits_h)
        return replace(self, waited_jobs=len(waits_h), avg_wait_h=average, p90_wait_h=percentile(waits_h, 90))


def parse_period(text: str | None) -> Period:
    """``YYYY``, ``YYYY-Qn``, ``YYYY-MM``, ``YYYY-Www`` (ISO week) or ``YYYY-MM-DD``; empty: all time."""
    if not text:
        return Period("all", None, None)
    try:
        if re.fullmatch(r"\d{4}", text):
            year = int(text)
            return Period(text, _utc(date(year, 1, 1)), _utc(date(year + 1, 1, 1)))
        if m := re.fullmatch(r"(\d{4})-Q([1-4])", text):
            year, quarter = int(m[1]), int(m[2])
            start = date(year, 3 * quarter - 2, 1)
            end = date(year + 1, 1, 1) if quarter == 4 else date(year, 3 * quarter + 1, 1)
            return Period(text, _utc(start), _utc(end))
        if m := re.fullmatch(r"(\d{4})-(\d{2})", text):
            year, month = int(m[1]), int(m[2])
            start = date(year, month, 1)
            end = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
            return Period(text, _utc(start), _utc(end))
        if m := re.fullmatch(r"(\d{4})-W(\d{2})", text):
            start = date.fromisocalendar(int(m[1]), int(m[2]), 1)
            return Period(text, _utc(start), _utc(start + timedelta(days=7)))
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            day = date.fromisoformat(text)
            return Period(text, _utc(day), _utc(day + timedelta(days=1)))
    except ValueError:
        pass
    raise InvalidRequestError(
        f"period {text!r} is not YYYY, YYYY-Qn, YYYY-MM, YYYY-Www or YYYY-MM-DD (e.g. 2026-03, 2026-Q1)"
    )


def _utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _group_column(by: str) -> SQLColumnExpression[str]:
    columns: dict[str, SQLColumnExpression[str]] = {
        "project": ProjectRow.name,
        "institution": InstitutionRow.name,
        "kind": InstitutionRow.kind,
        "region": InstitutionRow.region,
        "program": func.coalesce(ProgramRow.name, literal(NO_AWARD)),
        "site": func.coalesce(UsageRow.site, literal(UNKNOWN)),
        "model": UsageRow.model,
    }
    column = columns.get(by)
    if column is None:
        raise InvalidRequestError(f"cannot group usage by {by!r}; by one of: {', '.join(GROUPINGS)}")
    return column


def bucket_of(at: datetime, every: str) -> str:
    """The label of the day, ISO week, month, quarter or year ``at`` falls in (as ``parse_period``
    reads it back)."""
    if every == "day":
        return at.strftime("%Y-%m-%d")
    if every == "week":
        year, week, _ = at.isocalendar()
        return f"{year}-W{week:02d}"
    if every == "month":
        return at.strftime("%Y-%m")
    if every == "quarter":
        return f"{at.year}-Q{(at.month - 1) // 3 + 1}"
    if every == "year":
        return str(at.year)
    raise InvalidRequestError(f"cannot bucket usage by {every!r}; every one of: {', '.join(EVERY)}")


@dataclass(frozen=True)
class Scope:
    """Which usage a report sums: of ``project_ids`` only (``None``: every project), and of
    ``program_id``'s awards only (``None``: any award or none)."""

    project_ids: set[int] | None = None
    program_id: int | None = None


def usage_report(
    session: Session,
    by: str,
    period: Period,
    project_ids: set[int] | None,
    every: str | None = None,
    program_id: int | None = None,
) -> list[UsageLine]:
    """One line per group with usage in ``period``, largest GPU-hours first (ties by name); with
    ``every``, one per group and bucket instead, in time order. ``program_id``: only the usage
    charged to that program's awards."""
    scope = Scope(project_ids, program_id)
    if every is not None:
        return _time_series(session, by, period, scope, every)
    lines = _summed(session, _group_column(by).label("grp"), None, period, scope)
    if by in WAIT_GROUPINGS:
        waits = job_waits_h(session, by, period, scope)
        lines = [line.with_waits(waits.get(line.group, ())) for line in lines]
    return sorted(lines, key=lambda line: (-line.gpu_hours, line.group))


def _summed(
    session: Session,
    group: Label[str],
    bucket: Label[str] | None,
    period: Period,
    scope: Scope,
) -> list[UsageLine]:
    """One ``GROUP BY`` on ``group`` (and ``bucket``): the sums of each line of a report."""
    keys = (group,) if bucket is None else (group, bucket)
    held_s = _seconds(session.get_bind().dialect.name, UsageRow.ended_at, UsageRow.started_at)
    query = select(
        *keys,
        func.sum(UsageRow.gpu_hours),
        func.count(UsageRow.id),
        func.count(func.distinct(UsageRow.job_id)),
        func.sum(UsageRow.energy_kwh),
        func.sum(UsageRow.co2_kg),
        func.sum(UsageRow.cost_krw),
        func.sum(UsageRow.flops),
        func.sum(held_s),
        func.max(UsageRow.gpus),
    ).group_by(*keys)
    lines = []
    for row in session.execute(_scoped(query, period, scope)):
        hours, segments, jobs, energy, co2, cost, flops, wall_s, max_gpus = row[len(keys) :]
        lines.append(
            UsageLine(
                group=str(row[0]),
                bucket=str(row[1]) if bucket is not None else "",
                gpu_hours=float(hours or 0),
                segments=int(segments or 0),
                jobs=int(jobs or 0),
                energy_kwh=float(energy or 0),
                co2_kg=float(co2 or 0),
                cost_krw=int(cost or 0),  # PostgreSQL sums a bigint as numeric: whole won, never a float
                flops=float(flops or 0),
                wall_hours=max(0.0, float(wall_s or 0)) / 3600.0,
                max_gpus=int(max_gpus or 0),
            )
        )
    return lines


def _scoped(query: Select[*_Ts], period: Period, scope: Scope) -> Select[*_Ts]:
    """``query`` over the usage rows of ``period`` and ``scope``, joined to what groups them."""
    return _joined(query, UsageRow.project_id, UsageRow.award_id, UsageRow.ended_at, period, scope)


def _joined(
    query: Select[*_Ts],
    project_id: InstrumentedAttribute[int],
    award_id: InstrumentedAttribute[int | None],
    ended_at: InstrumentedAttribute[datetime] | InstrumentedAttribute[datetime | None],
    period: Period,
    scope: Scope,
) -> Select[*_Ts]:
    """``query`` over rows (of usage or of jobs) whose ``ended_at`` falls in ``period``, within
    ``scope``, joined through ``project_id`` and ``award_id`` to the project, institution, award and
    program that group them."""
    query = (
        query.join(ProjectRow, ProjectRow.id == project_id)
        .join(InstitutionRow, InstitutionRow.id == ProjectRow.institution_id)
        .outerjoin(AwardRow, AwardRow.id == award_id)
        .outerjoin(ProgramRow, ProgramRow.id == AwardRow.program_id)
    )
    if period.start is not None and period.end is not None:
        query = query.where(ended_at >= period.start, ended_at < period.end)
    if scope.project_ids is not None:
        query = query.where(project_id.in_(scope.project_ids))
    if scope.program_id is not None:
        query = query.where(AwardRow.program_id == scope.program_id)
    return query


# How each database labels a timestamp's bucket, as ``bucket_of`` does. SQLite before 3.46 has no ISO
# week (``%G``/``%V``): a weekly series there is bucketed in Python instead.
_PG_FORMATS = {
    "day": "YYYY-MM-DD",
    "week": 'IYYY-"W"IW',
    "month": "YYYY-MM",
    "quarter": 'YYYY-"Q"Q',
    "year": "YYYY",
}
_SQLITE_FORMATS = {"day": "%Y-%m-%d", "month": "%Y-%m", "year": "%Y"}


def bucket_sql(dialect: str, every: str) -> SQLColumnExpression[str] | None:
    """The bucket of ``UsageRow.ended_at`` computed by the database, or ``None`` where it cannot."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", UsageRow.ended_at), _PG_FORMATS[every])
    if dialect == "sqlite":
        if every == "quarter":
            month = func.cast(func.strftime("%m", UsageRow.ended_at), Integer)
            quarter = func.cast((month + 2) // 3, String)
            return func.strftime("%Y", UsageRow.ended_at).concat("-Q").concat(quarter)
        if every in _SQLITE_FORMATS:
            return func.strftime(_SQLITE_FORMATS[every], UsageRow.ended_at)
    return None


def _time_series(session: Session, by: str, period: Period, scope: Scope, every: str) -> list[UsageLine]:
    """The same sums per bucket of time, grouped by the database where it can label the bucket (one
    ``GROUP BY`` on group and bucket), else bucketed here from each segment's end."""
    bucket_of(datetime.now(UTC), every)  # an unknown ``every`` fails before the query runs
    bucket = bucket_sql(session.get_bind().dialect.name, every)
    if bucket is not None:
        lines = _summed(session, _group_column(by).label("grp"), bucket.label("bucket"), period, scope)
        return sorted(lines, key=lambda line: (line.bucket, -line.gpu_hours, line.group))
    query = select(
        _group_column(by),
        UsageRow.started_at,
        UsageRow.ended_at,
        UsageRow.job_id,
        UsageRow.gpus,
        UsageRow.gpu_hours,
        UsageRow.energy_kwh,
        UsageRow.co2_kg,
        UsageRow.cost_krw,
        UsageRow.flops,
    )
    sums: dict[tuple[str, str], list[float]] = {}
    jobs: dict[tuple[str, str], set[int]] = {}
    for name, started, ended, job_id, gpus, hours, energy, co2, cost, flops in session.execute(
        _scoped(query, period, scope)
    ):
        key = (str(name), bucket_of(ended, every))
        row = sums.setdefault(key, [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
        row[0] += hours
        row[1] += 1
        row[2] += energy
        row[3] += co2
        row[4] += cost
        row[5] += flops
        row[6] += max(0.0, (ended - started).total_seconds())
        row[7] = max(row[7], gpus)
        jobs.setdefault(key, set()).add(job_id)
    lines = [
        UsageLine(
            group,
            bucket,
            v[0],
            int(v[1]),
            len(jobs[(group, bucket)]),
            v[2],
            v[3],
            int(v[4]),
            v[5],
            wall_hours=v[6] / 3600.0,
            max_gpus=int(v[7]),
        )
        for (group, bucket), v in sums.items()
    ]
    return sorted(lines, key=lambda line: (line.bucket, -line.gpu_hours, line.group))


def job_waits_h(session: Session, by: str, period: Period, scope: Scope) -> dict[str, list[float]]:
    """Per group, the waits in hours of the jobs that ended in ``period`` (in any end state) having
    run: time in the system less the time it held GPUs (``attained_gpu_s / gpus``, which every
    segment's end adds to), so a wait after a preemption counts as the simulator counts it
    (``wait_s``). One query over the job rows, the seconds computed by the database, never a join to
    the segments (a year of a national pool has millions); ranked here, since SQLite has no
    percentile."""
    if by not in WAIT_GROUPINGS:
        raise InvalidRequestError(f"cannot group waits by {by!r}; by one of: {', '.join(WAIT_GROUPINGS)}")
    dialect = session.get_bind().dialect.name
    group: Label[str] = _group_column(by).label("grp")
    in_system_s = _seconds(dialect, JobRow.ended_at, JobRow.submitted_at)
    query = (
        select(group, in_system_s - JobRow.attained_gpu_s / JobRow.gpus)
        .select_from(JobRow)
        .where(JobRow.state.in_(ENDED_STATES), JobRow.ended_at.is_not(None), JobRow.attained_gpu_s > 0)
    )
    waits: dict[str, list[float]] = {}
    for name, wait_s in session.execute(
        _joined(query, JobRow.project_id, JobRow.award_id, JobRow.ended_at, period, scope)
    ):
        waits.setdefault(str(name), []).append(max(0.0, float(wait_s or 0)) / 3600.0)
    return waits


def _seconds(
    dialect: str,
    later: InstrumentedAttribute[datetime] | InstrumentedAttribute[datetime | None],
    earlier: InstrumentedAttribute[datetime],
) -> SQLColumnExpression[float]:
    """``later - earlier`` in seconds, computed by the database (on SQLite from Julian days, exact to a
    millisecond, so rounded to one: a 4 h segment is 14,400 s, not 14,399.99997)."""
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier)
    return func.round((func.julianday(later) - func.julianday(earlier)) * 86_400.0, 3)


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile (0..100) of ``values``, interpolated linearly between the closest
    ranks (NumPy's default, as the simulator reports waits)."""
    if not values:
        raise ValueError("the percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
