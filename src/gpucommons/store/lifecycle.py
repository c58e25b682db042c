"""One step of the award lifecycle at a given ``now`` (design note 0012): expire awards at their end,
evaluate each active award's reclaim rule once per period and take back what it says, offer the freed
GPUs to the program's next-ranked waiting proposals, and queue the notices all that calls for, and
those of declared targets whose latest closed period missed (design note 0014) and of training
compute that crossed a warning level (``store/compute.py``). The
rules are ``gpucommons.reclaiming``'s; this module reads and writes rows. Flushes, never commits: the
caller (the server's timer, ``POST /lifecycle/run``) commits the whole step or nothing.

A step is idempotent: run again at the same ``now`` it changes nothing. An award records the last
period it was evaluated for (``AwardRow.reclaim_checked_period``, set by a compare-and-set, so two racing
steps cannot both reclaim), and every notice has a unique key. A step that comes late (a server down
for two periods) evaluates the latest ended period once, with the usage as it stands.

Notices of events (an offer, a start) older than ``LATE_NOTICE_DAYS`` are not sent, so the first step
on an existing database does not announce every old award.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gpucommons.notify import texts
from gpucommons.notify.texts import AwardFacts
from gpucommons.reclaiming import (
    DEFAULT_RECLAIM_TABLE,
    AwardPlan,
    ReclaimDecision,
    ReclaimSchedule,
    ReclaimTable,
    budget_alerts_reached,
    decide_reclaim,
    expiry_warning_due,
)
from gpucommons.store import awards
from gpucommons.store.attainment import queue_missed_targets
from gpucommons.store.awards import AwardRow, ReclaimRow
from gpucommons.store.calls import ProgramRow, get_program, reclaim_rule_values
from gpucommons.store.compute import queue_compute_notices
from gpucommons.store.notices import NoticeDraft, queue_notice
from gpucommons.store.tenancy import ProjectRow

LATE_NOTICE_DAYS = 7
DEFAULT_EXPIRY_WARNING_DAYS = 14


@dataclass(frozen=True)
class ReclaimRule:
    """A program's reclaim rule: the table and when it is evaluated."""

    table: ReclaimTable
    schedule: ReclaimSchedule


def reclaim_rule(program: ProgramRow) -> ReclaimRule:
    """The rule ``program`` states, the default table where it states none."""
    table = (
        DEFAULT_RECLAIM_TABLE if program.reclaim_table is None else ReclaimTable.parse(program.reclaim_table)
    )
    return ReclaimRule(table, ReclaimSchedule(program.reclaim_period_days, program.reclaim_warning_days))


def set_reclaim_rule(
    session: Session, program_id: int, table: object | None, period_days: int, warning_days: int
) -> ProgramRow:
    """Replace a program's rule (``calls.reclaim_rule_values``). Checked whole before anything is
    set, so bad input changes nothing."""
    program = get_program(session, program_id)
    for column, value in reclaim_rule_values(table, period_days, warning_days).items():
        setattr(program, column, value)
    session.flush()
    return program


@dataclass(frozen=True)
class LifecycleOptions:
    expiry_warning_days: int = DEFAULT_EXPIRY_WARNING_DAYS


@dataclass
class LifecycleReport:
    """What one step did: award ids expired and offered, the reclaims recorded, the notices queued."""

    expired: list[int] = field(default_factory=list)
    reclaims: list[ReclaimRow] = field(default_factory=list)
    offered: list[int] = field(default_factory=list)
    notices: list[int] = field(default_factory=list)


class _Step:
    """The state of one step: its time, report and the names its notices quote."""

    def __init__(self, session: Session, now: datetime, options: LifecycleOptions) -> None:
        self.session, self.now, self.options = session, now, options
        self.report = LifecycleReport()
        self._projects: dict[int, str] = {}

    def facts(self, award: AwardRow, program: ProgramRow) -> AwardFacts:
        if award.project_id not in self._projects:
            project = self.session.get(ProjectRow, award.project_id)
            self._projects[award.project_id] = project.name if project is not None else str(award.project_id)
        return AwardFacts(
            award.id,
            self._projects[award.project_id],
            program.name,
            award.model,
            award.unit,
            award.guaranteed_gpus,
            award.gpu_hours_budget,
            award.gpu_hours_used,
            award.starts_at,
            award.ends_at,
        )

    def notify(self, kind: str, award: AwardRow, about: str, text: texts.Text) -> None:
        draft = NoticeDraft(kind, award.project_id, award.id, about, *text)
        row = queue_notice(self.session, draft, self.now)
        if row is not None:
            self.report.notices.append(row.id)


def run_lifecycle(session: Session, now: datetime, options: LifecycleOptions) -> LifecycleReport:
    """One lifecycle step at ``now``; see the module docstring for what it does, in this order."""
    step = _Step(session, now, options)
    for award in awards.expire_awards(session, now):
        step.report.expired.append(award.id)
        facts = step.facts(award, get_program(session, award.program_id))
        step.notify("award_expired", award, award.ends_at.isoformat(), texts.expired(facts))
    freed_programs = sorted({award.program_id for award in _reclaim(step)})
    for program_id in freed_programs:
        step.report.offered.extend(row.id for row in awards.auto_award(session, program_id, now))
    _notify_offers_and_starts(step)
    _notify_ends_and_budgets(step)
    step.report.notices.extend(queue_missed_targets(session, now))
    step.report.notices.extend(queue_compute_notices(session, now))
    return step.report


def _awards(session: Session, status: str) -> list[tuple[AwardRow, ProgramRow]]:
    query = (
        select(AwardRow, ProgramRow)
        .join(ProgramRow, ProgramRow.id == AwardRow.program_id)
        .where(AwardRow.status == status)
        .order_by(AwardRow.id)
    )
    return [(award, program) for award, program in session.execute(query)]


def _plan(award: AwardRow) -> AwardPlan:
    return AwardPlan(
        award.starts_at, award.ends_at, award.guaranteed_gpus, award.gpu_hours_budget, award.gpu_hours_used
    )


def _reclaim(step: _Step) -> list[AwardRow]:
    """Evaluate every active award's rule; returns the awards that gave back guaranteed GPUs."""
    freed = []
    for award, program in _awards(step.session, "active"):
        rule = reclaim_rule(program)
        if not rule.table.bands or award.starts_at > step.now:
            continue
        ended = rule.schedule.periods_ended(award.starts_at, award.ends_at, step.now)
        if ended > award.reclaim_checked_period:
            if _claim_period(step.session, award, ended) and _take_back(step, award, program, rule, ended):
                freed.append(award)
        else:
            _warn(step, award, program, rule, ended + 1)
    return freed


def _claim_period(session: Session, award: AwardRow, period: int) -> bool:
    """Record that ``period`` is evaluated, unless a racing step already did (then: ``False``)."""
    claimed = session.execute(
        update(AwardRow)
        .where(AwardRow.id == award.id, AwardRow.reclaim_checked_period < period)
        .values(reclaim_checked_period=period)
    )
    return getattr(claimed, "rowcount", 0) == 1


def _take_back(step: _Step, award: AwardRow, program: ProgramRow, rule: ReclaimRule, period: int) -> bool:
    """Apply the rule for ``period``; whether guaranteed GPUs came back."""
    decision = decide_reclaim(_plan(award), rule.table, program.unit_gpus, step.now)
    if not decision.takes_anything:
        return False
    award.guaranteed_gpus -= decision.gpus
    award.reclaimed_gpus += decision.gpus
    if award.gpu_hours_budget:
        award.gpu_hours_budget -= decision.gpu_hours
    if award.guaranteed_gpus == 0 and not award.gpu_hours_budget:
        award.status = "reclaimed"
    record = ReclaimRow(
        award_id=award.id,
        reclaimed_gpus=decision.gpus,
        reclaimed_gpu_hours=decision.gpu_hours,
        utilization=decision.usage_ratio,
        period=period,
        reclaimed_at=step.now,
    )
    step.session.add(record)
    step.session.flush()
    step.report.reclaims.append(record)
    step.notify(
        "reclaim_done", award, f"period-{period}", texts.reclaim_done(step.facts(award, program), decision)
    )
    return decision.gpus > 0


def _warn(step: _Step, award: AwardRow, program: ProgramRow, rule: ReclaimRule, period: int) -> None:
    """Warn ahead of ``period``'s check when the rule, as used now, would take something back then."""
    schedule = rule.schedule
    check_at = schedule.period_end(award.starts_at, period)
    if check_at >= award.ends_at or step.now < check_at - timedelta(days=schedule.warning_days):
        return
    decision: ReclaimDecision = decide_reclaim(_plan(award), rule.table, program.unit_gpus, step.now)
    if decision.takes_anything:
        text = texts.reclaim_warning(step.facts(award, program), decision, check_at)
        step.notify("reclaim_warning", award, f"period-{period}", text)


def _notify_offers_and_starts(step: _Step) -> None:
    recent = step.now - timedelta(days=LATE_NOTICE_DAYS)
    for award, program in _awards(step.session, "pending"):
        if award.created_at >= recent:
            step.notify("award_offered", award, "", texts.offered(step.facts(award, program)))
    for award, program in _awards(step.session, "active"):
        if recent <= award.starts_at <= step.now:
            step.notify("award_started", award, "", texts.started(step.facts(award, program)))


def _notify_ends_and_budgets(step: _Step) -> None:
    for award, program in _awards(step.session, "active"):
        if expiry_warning_due(award.ends_at, step.now, step.options.expiry_warning_days):
            text = texts.expiring(step.facts(award, program), step.now)
            step.notify("award_expiring", award, award.ends_at.isoformat(), text)
        for level in budget_alerts_reached(award.gpu_hours_used, award.gpu_hours_budget):
            text = texts.budget_used(step.facts(award, program), level)
            step.notify("budget_used", award, f"{level:.0%}", text)
