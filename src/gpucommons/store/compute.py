"""The training-compute ledger (design note 0010): cumulative training FLOPs per project and per
declared model lineage, against the AI Basic Act's threshold of 10^26 FLOPs (``docs/DOMAIN-FACTS.md``
section 5 [S118]), with warnings at 50 %, 80 % and 100 %; each project's exportable transparency
report; and the ``compute_threshold`` notices the lifecycle step queues when a level is crossed.

FLOPs are metered per segment as ``GPU-seconds x the model's BF16 peak x ASSUMED_UTILIZATION``
(``metering/segment.py``), an estimate stated with every ledger and report. A lineage is what a job
names at submit (``jobs.lineage``): the model family it trains, so that a series of runs of one model
(pre-training, then continued pre-training) adds up in one line even when they run as many jobs; a
job that names none counts under the project only. Flushes, never commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import func, literal, select
from sqlalchemy.orm import Session

from gpucommons.domain.accelerators import CATALOG
from gpucommons.errors import ConfigError
from gpucommons.metering import ASSUMED_UTILIZATION
from gpucommons.notify.texts import SUBJECT_PREFIX
from gpucommons.store.jobs import JobRow
from gpucommons.store.notices import NoticeDraft, queue_notice
from gpucommons.store.reports import bucket_sql
from gpucommons.store.tenancy import ProjectRow
from gpucommons.store.usage import UsageRow

TRAINING_COMPUTE_THRESHOLD_FLOPS = 1e26
LEVELS = ((1.0, "over"), (0.8, "above 80 %"), (0.5, "above 50 %"))
BELOW = "below 50 %"
LedgerBy = Literal["project", "lineage"]


@dataclass(frozen=True)
class ComputeLine:
    project: str
    lineage: str  # "" on a line per project, and for the jobs of a lineage line that named none
    flops: float
    gpu_hours: float
    share_of_threshold: float
    status: str  # "over", "above 80 %", "above 50 %" or "below 50 %"


def status_of(share: float) -> str:
    """The warning level of a share of the threshold."""
    return next((label for level, label in LEVELS if share >= level), BELOW)


def _line(project: str, lineage: str, flops: float | None, hours: float | None) -> ComputeLine:
    total = float(flops or 0)
    share = total / TRAINING_COMPUTE_THRESHOLD_FLOPS
    return ComputeLine(project, lineage, total, float(hours or 0), share, status_of(share))


def compute_ledger(
    session: Session, project_ids: set[int] | None, by: LedgerBy = "project"
) -> list[ComputeLine]:
    """Each project's (``by="lineage"``: each project's lineages') cumulative training FLOPs, all time,
    largest first; ``project_ids`` limits it to those projects (``None``: all)."""
    lineage = JobRow.lineage if by == "lineage" else literal("")
    query = (
        select(ProjectRow.name, lineage, func.sum(UsageRow.flops), func.sum(UsageRow.gpu_hours))
        .join(ProjectRow, ProjectRow.id == UsageRow.project_id)
        .group_by(ProjectRow.name)
    )
    if by == "lineage":
        query = query.join(JobRow, JobRow.id == UsageRow.job_id).group_by(JobRow.lineage)
    if project_ids is not None:
        query = query.where(UsageRow.project_id.in_(project_ids))
    lines = [_line(str(p), str(lin or ""), flops, hours) for p, lin, flops, hours in session.execute(query)]
    return sorted(lines, key=lambda line: (-line.flops, line.project, line.lineage))


@dataclass(frozen=True)
class ModelLine:
    """One accelerator model's part of a project's compute, with the peak the estimate used."""

    model: str
    bf16_tflops: float  # dense BF16 peak per device (0 for a model not in the catalog)
    gpu_hours: float
    flops: float


@dataclass(frozen=True)
class MonthLine:
    month: str  # YYYY-MM of the segments' ends
    gpu_hours: float
    flops: float
    cumulative_flops: float


@dataclass(frozen=True)
class TransparencyReport:
    """What a project publishes about its training compute: the totals and status, by lineage, by
    accelerator model and by month, and how the figures were estimated."""

    project: str
    generated_at: datetime
    threshold_flops: float
    utilization_assumed: float
    total: ComputeLine
    lineages: list[ComputeLine]
    models: list[ModelLine]
    months: list[MonthLine]
    method: str


METHOD = (
    "Training compute is estimated per metered run segment as GPU-seconds x the accelerator's dense "
    "BF16 peak x an assumed utilization (model FLOPs utilization) of {utilization:.0%}; a segment counts "
    "in the month it ended. Lineages are as the project named them at submission."
)


def transparency_report(session: Session, project: ProjectRow, now: datetime) -> TransparencyReport:
    """``project``'s transparency report as of ``now``."""
    mine = UsageRow.project_id == project.id
    (total,) = compute_ledger(session, {project.id}) or [_line(project.name, "", 0.0, 0.0)]
    lineages = compute_ledger(session, {project.id}, "lineage")
    by_model = session.execute(
        select(UsageRow.model, func.sum(UsageRow.gpu_hours), func.sum(UsageRow.flops))
        .where(mine)
        .group_by(UsageRow.model)
        .order_by(UsageRow.model)
    )
    models = [
        ModelLine(
            str(m), CATALOG[str(m)].bf16_tflops if str(m) in CATALOG else 0.0, float(h or 0), float(f or 0)
        )
        for m, h, f in by_model
    ]
    bucket = bucket_sql(session.get_bind().dialect.name, "month")
    if bucket is None:  # both supported databases label months themselves
        raise ConfigError(f"no month buckets on {session.get_bind().dialect.name}")
    by_month = session.execute(
        select(bucket, func.sum(UsageRow.gpu_hours), func.sum(UsageRow.flops))
        .where(mine)
        .group_by(bucket)
        .order_by(bucket)
    )
    months, running = [], 0.0
    for month, hours, flops in by_month:
        running += float(flops or 0)
        months.append(MonthLine(str(month), float(hours or 0), float(flops or 0), running))
    return TransparencyReport(
        project.name,
        now,
        TRAINING_COMPUTE_THRESHOLD_FLOPS,
        ASSUMED_UTILIZATION,
        total,
        lineages,
        models,
        months,
        METHOD.format(utilization=ASSUMED_UTILIZATION),
    )


def queue_compute_notices(session: Session, now: datetime) -> list[int]:
    """Queue a ``compute_threshold`` notice for each project, and each named lineage, whose FLOPs have
    reached a warning level it was not yet told of (only the highest level reached, so a project that
    jumps past two levels in one step hears once); returns the new notices' ids."""
    ids = {name: pid for pid, name in session.execute(select(ProjectRow.id, ProjectRow.name))}
    reached = [
        *compute_ledger(session, None),
        *(line for line in compute_ledger(session, None, "lineage") if line.lineage),
    ]
    queued = []
    for line in reached:
        if line.status == BELOW:
            continue
        level = next(level for level, label in LEVELS if label == line.status)
        about = f"lineage-{line.lineage}:{level:.0%}" if line.lineage else f"{level:.0%}"
        draft = NoticeDraft("compute_threshold", ids[line.project], None, about, *notice_text(line))
        row = queue_notice(session, draft, now)
        if row is not None:
            queued.append(row.id)
    return queued


def notice_text(line: ComputeLine) -> tuple[str, str]:
    """The subject and body of a ``compute_threshold`` notice."""
    what = (
        f"lineage {line.lineage!r} of project {line.project}" if line.lineage else f"project {line.project}"
    )
    subject = f"{SUBJECT_PREFIX} {what}: training compute {line.status} of 10^26 FLOPs"
    body = (
        f"The training compute of {what} has reached {line.flops:.3g} FLOPs, "
        f"{line.share_of_threshold:.1%} of the AI Basic Act's threshold of 10^26 FLOPs "
        f"({line.gpu_hours:,.1f} GPU-hours, estimated at {ASSUMED_UTILIZATION:.0%} of BF16 peak).\n"
        f"The project's transparency report: gpuc report transparency {line.project}\n"
    )
    return subject, body
