"""What each notice says: a subject and a plain-text body from the facts of one award. Pure formatting,
so the wording is tested without a database or a mail server; ``store/lifecycle.py`` decides when a
notice is due and queues what these return."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gpucommons.reclaiming import ReclaimDecision

SUBJECT_PREFIX = "[gpucommons]"


@dataclass(frozen=True)
class AwardFacts:
    award_id: int
    project: str
    program: str
    model: str
    unit: str  # what ``gpu_hours_budget`` and ``gpu_hours_used`` count
    guaranteed_gpus: int
    gpu_hours_budget: float | None
    gpu_hours_used: float
    starts_at: datetime
    ends_at: datetime


Text = tuple[str, str]  # subject, body


def _day(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def _hours(value: float) -> str:
    return f"{value:,.1f}"


def _grant(f: AwardFacts) -> str:
    parts = []
    if f.guaranteed_gpus:
        parts.append(f"{f.guaranteed_gpus} guaranteed {f.model} GPUs")
    if f.gpu_hours_budget:
        parts.append(f"a budget of {_hours(f.gpu_hours_budget)} {f.unit}")
    return " and ".join(parts) or "no guaranteed GPUs or budget left"


def _subject(f: AwardFacts, what: str) -> str:
    return f"{SUBJECT_PREFIX} award {f.award_id} of project {f.project}: {what}"


def _lines(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def _period(f: AwardFacts) -> str:
    return f"from {_day(f.starts_at)} to {_day(f.ends_at)}"


def offered(f: AwardFacts) -> Text:
    return _subject(f, "offered"), _lines(
        f"Program {f.program!r} offers project {f.project} award {f.award_id}: {_grant(f)}, {_period(f)}.",
        "It counts once it is activated (the agreement signed).",
    )


def started(f: AwardFacts) -> Text:
    return _subject(f, "started"), _lines(
        f"Award {f.award_id} of program {f.program!r} is active: {_grant(f)}, {_period(f)}.",
    )


def expiring(f: AwardFacts, at: datetime) -> Text:
    days = max(0, (f.ends_at - at).days)
    return _subject(f, f"expires on {f.ends_at:%Y-%m-%d}"), _lines(
        f"Award {f.award_id} of program {f.program!r} ends on {_day(f.ends_at)}, in {days} days.",
        f"It grants {_grant(f)}; {_hours(f.gpu_hours_used)} {f.unit} are used so far.",
        "Jobs of the project wait for another award after that.",
    )


def expired(f: AwardFacts) -> Text:
    return _subject(f, "expired"), _lines(
        f"Award {f.award_id} of program {f.program!r} ended on {_day(f.ends_at)}; "
        f"{_hours(f.gpu_hours_used)} {f.unit} were used.",
        "Its guaranteed GPUs went back to the program.",
    )


def _taken(f: AwardFacts, d: ReclaimDecision) -> str:
    parts = []
    if d.gpus:
        parts.append(f"{d.gpus} guaranteed GPUs")
    if d.gpu_hours:
        parts.append(f"{_hours(d.gpu_hours)} {f.unit} of the budget")
    return " and ".join(parts)


def reclaim_warning(f: AwardFacts, d: ReclaimDecision, on: datetime) -> Text:
    return _subject(f, f"unused capacity will be reclaimed on {on:%Y-%m-%d}"), _lines(
        f"Award {f.award_id} has used {d.usage_ratio:.0%} of the GPU-hours planned by now.",
        f"At that rate {d.fraction:.0%} of what remains, {_taken(f, d)}, is taken back on {_day(on)}",
        "and offered to the next proposals of the program. Using more before then keeps more.",
    )


def reclaim_done(f: AwardFacts, d: ReclaimDecision) -> Text:
    return _subject(f, "unused capacity reclaimed"), _lines(
        f"Award {f.award_id} had used {d.usage_ratio:.0%} of the GPU-hours planned by now, so "
        f"{d.fraction:.0%} of what remained, {_taken(f, d)}, was taken back.",
        f"It now grants {_grant(f)} until {_day(f.ends_at)}.",
    )


def budget_used(f: AwardFacts, level: float) -> Text:
    budget = f.gpu_hours_budget or 0.0
    return _subject(f, f"{level:.0%} of the budget used"), _lines(
        f"Award {f.award_id} has used {_hours(f.gpu_hours_used)} of its {_hours(budget)} {f.unit} "
        f"({f.gpu_hours_used / budget:.0%}); {_hours(max(0.0, budget - f.gpu_hours_used))} are left "
        f"until {_day(f.ends_at)}.",
    )
