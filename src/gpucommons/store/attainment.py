"""What each declared target attained in a period (design note 0014), and the ``target_missed``
notices of closed periods that missed. Read-only but for the notices; flushes, never commits.

The figures are the usage reports' own (``store/reports.py``): a share or a floor reads the group's
line of ``usage_report`` (by the target's grouping, over its period, within its program), a wait the
group's ``job_waits_h``. Targets that share a grouping, scope and period share one query (``Figures``),
so a report of every target, or a ``/metrics`` scrape, costs one query per distinct report.

A period is met, missed, or has no data: no GPU-hours in the scope (a share), no job of the group
ended (a wait). A floor with no use attained 0. ``margin`` is how far the figure lies on the good side
of the bound, in the target's unit (negative: missed by that much).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from gpucommons.notify.texts import SUBJECT_PREFIX
from gpucommons.store.notices import NoticeDraft, queue_notice
from gpucommons.store.reports import (
    Period,
    Scope,
    bucket_of,
    job_waits_h,
    parse_period,
    percentile,
    usage_report,
)
from gpucommons.store.targets import SHARE, WAIT, TargetRow, list_targets

MET, MISSED, NO_DATA = "met", "missed", "no data"


@dataclass(frozen=True)
class Attainment:
    """One target over one period. ``value`` and ``margin`` are in ``unit`` (``None``: no data); the
    basis is the group's and the scope's GPU-hours (a share, a floor) or the jobs counted (a wait)."""

    target_id: int
    name: str
    kind: str
    description: str
    period: str
    status: str  # "met", "missed" or "no data"
    value: float | None
    threshold: float
    unit: str
    margin: float | None
    group_gpu_hours: float | None = None
    scope_gpu_hours: float | None = None
    jobs: int | None = None

    @property
    def met(self) -> bool | None:
        return None if self.status == NO_DATA else self.status == MET


def current_period(every: str, now: datetime) -> Period:
    """The week, month, quarter or year ``now`` falls in."""
    return parse_period(bucket_of(now, every))


def latest_closed_period(every: str, now: datetime) -> Period:
    """The last whole week, month, quarter or year before the one ``now`` falls in."""
    start = current_period(every, now).start
    assert start is not None
    return parse_period(bucket_of(start - timedelta(microseconds=1), every))


@dataclass
class Figures:
    """The reports one evaluation reads, each queried once: GPU-hours per group and waits per group,
    keyed by grouping, program and period."""

    session: Session
    _hours: dict[tuple[str, int | None, Period], dict[str, float]] = field(default_factory=dict)
    _waits: dict[tuple[str, int | None, Period], dict[str, list[float]]] = field(default_factory=dict)

    def gpu_hours(self, by: str, program_id: int | None, period: Period) -> dict[str, float]:
        key = (by, program_id, period)
        if key not in self._hours:
            lines = usage_report(self.session, by, period, None, program_id=program_id)
            self._hours[key] = {line.group: line.gpu_hours for line in lines}
        return self._hours[key]

    def waits_h(self, by: str, program_id: int | None, period: Period) -> dict[str, list[float]]:
        key = (by, program_id, period)
        if key not in self._waits:
            self._waits[key] = job_waits_h(self.session, by, period, Scope(program_id=program_id))
        return self._waits[key]


def attainment(figures: Figures, target: TargetRow, period: Period) -> Attainment:
    """What ``target`` attained over ``period``."""
    if target.kind == WAIT:
        waits = figures.waits_h(target.group_by, target.program_id, period).get(target.group_value, [])
        value = percentile(waits, float(target.percentile or 0)) if waits else None
        return _result(target, period, value, jobs=len(waits))
    hours = figures.gpu_hours(target.group_by, target.program_id, period)
    group, scope = hours.get(target.group_value, 0.0), sum(hours.values())
    if target.kind != SHARE:
        return _result(target, period, group, group_gpu_hours=group, scope_gpu_hours=scope)
    value = 100.0 * group / scope if scope > 0 else None
    return _result(target, period, value, group_gpu_hours=group, scope_gpu_hours=scope)


def _result(
    target: TargetRow,
    period: Period,
    value: float | None,
    *,
    group_gpu_hours: float | None = None,
    scope_gpu_hours: float | None = None,
    jobs: int | None = None,
) -> Attainment:
    """The attainment of ``value`` against the target's bound: a maximum for a wait, else a minimum."""
    margin = None
    if value is not None:
        margin = target.threshold - value if target.kind == WAIT else value - target.threshold
    status = NO_DATA if margin is None else MET if margin >= 0 else MISSED
    return Attainment(
        target_id=target.id,
        name=target.name,
        kind=target.kind,
        description=target.description,
        period=period.label,
        status=status,
        value=value,
        threshold=target.threshold,
        unit=target.unit,
        margin=margin,
        group_gpu_hours=group_gpu_hours,
        scope_gpu_hours=scope_gpu_hours,
        jobs=jobs,
    )


def attainments(
    session: Session, period: Period | None, now: datetime, targets: Sequence[TargetRow] | None = None
) -> list[Attainment]:
    """Every target (or ``targets``) over ``period``; without one, each over its latest closed period."""
    figures = Figures(session)
    rows = list_targets(session) if targets is None else targets
    return [
        attainment(figures, t, period if period is not None else latest_closed_period(t.every, now))
        for t in rows
    ]


def queue_missed_targets(session: Session, now: datetime) -> list[int]:
    """Queue a ``target_missed`` notice for each target whose latest closed period missed (a period
    that ended before the target was declared is not judged); returns the new notices' ids. Keyed by
    target and period, so a period is told once however many steps run."""
    figures = Figures(session)
    queued = []
    for target in list_targets(session):
        period = latest_closed_period(target.every, now)
        if period.end is None or period.end <= target.created_at:
            continue
        result = attainment(figures, target, period)
        if result.status != MISSED:
            continue
        subject, body = missed_text(result)
        draft = NoticeDraft("target_missed", None, None, f"target-{target.id}:{period.label}", subject, body)
        row = queue_notice(session, draft, now)
        if row is not None:
            queued.append(row.id)
    return queued


def missed_text(result: Attainment) -> tuple[str, str]:
    """The subject and body of a missed target's notice."""
    assert result.value is not None and result.margin is not None
    unit = f" {result.unit}" if result.unit != "%" else " %"
    if result.jobs is not None:
        basis = f"Basis: the {result.jobs} jobs of the group that ended in the period."
    else:
        basis = f"Basis: {result.group_gpu_hours or 0:,.1f} of {result.scope_gpu_hours or 0:,.1f} GPU-hours."
    lines = (
        f"Target {result.name!r} ({result.description}) was missed in {result.period}:",
        f"attained {result.value:,.2f}{unit} against {result.threshold:,.2f}{unit}, "
        f"short by {-result.margin:,.2f}{unit}.",
        basis,
        f"Every target of the period: gpuc report targets --period {result.period}",
    )
    return f"{SUBJECT_PREFIX} target {result.name} missed in {result.period}", "\n".join(lines) + "\n"
