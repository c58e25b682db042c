"""What the chaos harness checks after a run: the jobs' own records of every real run against the
database (``gpucommons.store`` models).

Each job of the harness appends to a file of its own under the records directory when it really runs
(``RECORD_SCRIPT``): a ``start`` line, then ``end`` when its command finished, or ``term`` when it was
asked to stop and ``stopped`` when it then exited, each with its job id, ``CUDA_VISIBLE_DEVICES``, the
time (``date +%s.%N``) and ``GPUC_GPUS`` (``node:i,j;node:k``). The files are the ground truth, which
the service cannot write: the harness knows every run, its GPUs and its times, whatever the database
says.

The columns (each must be 0):

- ``lost``: a submitted job that is not in the database, has not ended after the run drained, ended
  ``lost``, ended failed or timed out with no reason, or ended cancelled though nobody asked;
- ``run_twice``: a job with more real runs than ``1 + restarts`` (every run after the first needs a
  recorded preemption or requeue), or two of its runs overlapping in time;
- ``gpu_double_holds``: two real runs overlapping in time on the same GPU of the same node;
- ``charge_mismatches``: a job whose charged GPU-seconds differ from its real runs (a preempted run's:
  until it was asked to stop, its grace period being free) by more than one second's worth per segment,
  whose won differ from the quote of its real GPU time by more than that second's worth, whose won are not
  exactly the quote of its charged GPU time (the one rounding rule), or that ran more often than it was
  metered; an award whose ``gpu_hours_used`` is not the sum of its usage rows counts once too. A segment
  with no real run, of a job stopped (cancelled or preempted) while its process was starting, may be
  charged up to ``UNSEEN_START_S`` per GPU: the GPUs were held from the launch, and the job's command was
  stopped before it could record its start;
- ``drained_starts``: a run that started on a node more than ``DRAIN_SETTLE_S`` after the node was
  taken out of service, and before it came back. The service cannot see a drain before its next step
  and checks it again when it launches; a launch may then still wait for a stopping job to leave its
  GPUs (the harness's jobs take at most 1.5 s) and start its process. A start later than that was
  placed or launched by a service that knew the node was out of service. (Segments start when the
  backend really started the run, not at the decision, so the decision time is not in the database.)

Records are only ever a sub-interval of the process's life (the wrapper starts before the job's
first ``date`` and ends after its last), so an overlap found in them is a real one.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from gpucommons.metering import Rate, gpu_seconds, quote_krw, rate_for
from gpucommons.store.awards import AwardRow
from gpucommons.store.calls import ProgramRow
from gpucommons.store.jobs import JobRow
from gpucommons.store.tenancy import InstitutionRow, ProjectRow
from gpucommons.store.usage import UsageRow, pricing_of

TERMINAL = frozenset({"finished", "failed", "cancelled", "timeout", "lost"})
SECOND_S = 1.0  # "a second's worth" of GPU time per GPU and segment
UNSEEN_START_S = 3.0  # a run stopped before its command recorded its start: the process's start-up
DRAIN_SETTLE_S = 3.0  # a step to see the drain, a launch's wait for GPUs to be vacated, a process start
CLOCK_SLACK_S = 0.001  # stored times keep microseconds; a record's clock reading may round the other way

RECORD_SCRIPT = r"""
t0=$(date +%s.%N)
f="$1/$GPUC_JOB_ID-$t0-$$"
line() { echo "$GPUC_JOB_ID ${CUDA_VISIBLE_DEVICES:--} $(date +%s.%N) $1 $GPUC_GPUS" >> "$f"; }
echo "$GPUC_JOB_ID ${CUDA_VISIBLE_DEVICES:--} $t0 start $GPUC_GPUS" >> "$f"
trap 'line term; sleep "$3"; line stopped; exit 143' TERM
sleep "$2"
line end
"""
"""The job command: ``sh -c RECORD_SCRIPT chaos RECORDS_DIR SLEEP_S STOP_S``. A stop reaches the whole
process group, so ``sleep`` dies at once; the trap records when, then takes ``STOP_S`` seconds to exit,
as a job that writes a checkpoint does, and records when it exits. It holds its GPUs until its last
line (``end`` or ``stopped``)."""

COLUMNS = ("lost", "run_twice", "gpu_double_holds", "charge_mismatches", "drained_starts")


@dataclass(frozen=True)
class Run:
    """One real run of a job, from its record file. ``end_s`` is ``None`` when the process died
    without recording its end (SIGKILL)."""

    job_id: int
    gpus: tuple[tuple[str, int], ...]
    start_s: float
    end_s: float | None
    how: str  # "end", "stopped", "term" (killed while stopping) or "" (no end line)
    path: str
    term_s: float | None = None  # when it was asked to stop ("term"), if it was

    @property
    def held_s(self) -> float:
        return 0.0 if self.end_s is None else max(0.0, self.end_s - self.start_s)

    @property
    def to_signal_s(self) -> float:
        """Its time until it was asked to stop: what a preemption charges (its grace period is free)."""
        return (
            self.held_s
            if self.term_s is None
            else max(0.0, min(self.term_s, self.end_s or self.term_s) - self.start_s)
        )


@dataclass(frozen=True)
class Segment:
    """One metered segment (a usage row)."""

    start_s: float
    end_s: float
    gpus: int
    gpu_s: Fraction
    cost_krw: int


@dataclass
class JobFacts:
    """What the database says about one job."""

    id: int
    state: str
    reason_code: str
    reason: str
    gpus: int
    restarts: int
    award_id: int | None
    rate: Rate
    segments: list[Segment] = field(default_factory=list)

    @property
    def stopped_early(self) -> bool:
        """Whether some run of the job was stopped before its end: cancelled, or preempted/requeued."""
        return self.state == "cancelled" or self.restarts > 0


@dataclass(frozen=True)
class Drain:
    """A node out of service from ``on_s`` until ``off_s`` (harness clock)."""

    node: str
    on_s: float
    off_s: float


@dataclass(frozen=True)
class Harness:
    """What the harness did: the job ids it got back for its submissions, the jobs it asked (or tried)
    to cancel, and the drains."""

    submitted: frozenset[int]
    cancel_asked: frozenset[int]
    drains: tuple[Drain, ...] = ()


@dataclass
class Findings:
    """Per column, the offending job ids (or award ids) with one line of evidence each."""

    lost: dict[int, str] = field(default_factory=dict)
    run_twice: dict[int, str] = field(default_factory=dict)
    gpu_double_holds: list[str] = field(default_factory=list)
    charge_mismatches: dict[int, str] = field(default_factory=dict)
    drained_starts: dict[int, str] = field(default_factory=dict)
    award_ledger: list[str] = field(default_factory=list)  # counted with the charge mismatches
    runs: int = 0
    runs_without_end: int = 0
    failed_with_reason: dict[int, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counts = {name: len(getattr(self, name)) for name in COLUMNS}
        counts["charge_mismatches"] += len(self.award_ledger)
        return counts

    def evidence(self, limit: int = 10) -> list[str]:
        lines = []
        for name in COLUMNS:
            found = getattr(self, name)
            items = list(found.items()) if isinstance(found, dict) else list(enumerate(found))
            for key, why in items[:limit]:
                lines.append(f"{name}: job {key}: {why}" if isinstance(found, dict) else f"{name}: {why}")
            if len(items) > limit:
                lines.append(f"{name}: ... and {len(items) - limit} more")
        lines.extend(f"charge_mismatches: {line}" for line in self.award_ledger)
        return lines


# -- reading ---------------------------------------------------------------------------------------


def _gpus(text: str) -> tuple[tuple[str, int], ...]:
    """``node:0,1;node2:3`` as ``((node, 0), (node, 1), (node2, 3))``."""
    out: list[tuple[str, int]] = []
    for part in text.split(";"):
        node, _, indices = part.partition(":")
        out.extend((node, int(i)) for i in indices.split(",") if i)
    return tuple(sorted(out))


def parse_record(path: Path, text: str) -> Run | None:
    """The run one record file describes, or ``None`` for a file without a start line."""
    start: tuple[int, float, tuple[tuple[str, int], ...]] | None = None
    end_s, how, term_s = None, "", None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        job_id, at_s, kind, gpus = int(fields[0]), float(fields[2]), fields[3], _gpus(fields[4])
        if kind == "start":
            start = (job_id, at_s, gpus)
        if kind == "term":
            term_s = at_s
        elif kind in ("end", "stopped") or (kind == "term" and how != "stopped"):
            end_s, how = at_s, kind  # a "term" alone: killed while stopping; it held its GPUs until then
    if start is None:
        return None
    return Run(start[0], start[2], start[1], end_s, how, str(path), term_s)


def read_runs(records: Path) -> list[Run]:
    runs = []
    for path in sorted(records.iterdir()):
        if path.is_file():
            run = parse_record(path, path.read_text(errors="replace"))
            if run is not None:
                runs.append(run)
    return runs


def _s(at: datetime) -> float:
    return at.timestamp()


def read_jobs(session: Session) -> tuple[dict[int, JobFacts], list[str]]:
    """Every job with its metered segments and the rate its award's payer pays; and the awards whose
    ``gpu_hours_used`` is not the sum of their usage rows."""
    programs = {p.id: p for p in session.scalars(select(ProgramRow))}
    awards = {a.id: a for a in session.scalars(select(AwardRow))}
    institutions = {i.id: i for i in session.scalars(select(InstitutionRow))}
    projects = {p.id: p for p in session.scalars(select(ProjectRow))}
    jobs: dict[int, JobFacts] = {}
    for row in session.scalars(select(JobRow).order_by(JobRow.id)):
        award = awards.get(row.award_id) if row.award_id is not None else None
        program = programs.get(award.program_id) if award is not None else None
        institution = institutions[projects[row.project_id].institution_id]
        rate = rate_for(pricing_of(program), institution.kind, bool(institution.youth_startup))
        jobs[row.id] = JobFacts(
            row.id, row.state, row.reason_code, row.reason, row.gpus, row.restarts, row.award_id, rate
        )
    hours: defaultdict[int, float] = defaultdict(float)
    for usage in session.scalars(select(UsageRow).order_by(UsageRow.started_at)):
        gpu_s = gpu_seconds(usage.gpus, usage.ended_at - usage.started_at)
        jobs[usage.job_id].segments.append(
            Segment(_s(usage.started_at), _s(usage.ended_at), usage.gpus, gpu_s, usage.cost_krw)
        )
        if usage.award_id is not None:
            hours[usage.award_id] += usage.gpu_hours
    ledger = [
        f"award {a.id}: gpu_hours_used {a.gpu_hours_used:.9f}, usage rows sum to {hours[a.id]:.9f}"
        for a in awards.values()
        if not math.isclose(a.gpu_hours_used, hours[a.id], rel_tol=1e-9, abs_tol=1e-9)
    ]
    return jobs, ledger


# -- checking --------------------------------------------------------------------------------------


def check(
    jobs: dict[int, JobFacts], runs: Sequence[Run], harness: Harness, ledger: Iterable[str] = ()
) -> Findings:
    found = Findings(runs=len(runs), runs_without_end=sum(1 for r in runs if r.end_s is None))
    by_job: defaultdict[int, list[Run]] = defaultdict(list)
    for run in runs:
        by_job[run.job_id].append(run)
    for job_runs in by_job.values():
        job_runs.sort(key=lambda r: r.start_s)
    _check_lost(found, jobs, harness)
    for job_id, job_runs in sorted(by_job.items()):
        job = jobs.get(job_id)
        if job is None:
            found.run_twice[job_id] = f"{len(job_runs)} real run(s) of a job the database does not have"
            continue
        _check_twice(found, job, job_runs)
        _check_drained(found, job, job_runs, harness.drains)
    _check_holds(found, runs)
    for job_id, job in sorted(jobs.items()):
        _check_charge(found, job, by_job.get(job_id, []))
    found.award_ledger.extend(ledger)
    return found


def _check_lost(found: Findings, jobs: dict[int, JobFacts], harness: Harness) -> None:
    for job_id in sorted(harness.submitted | jobs.keys()):
        job = jobs.get(job_id)
        if job is None:
            found.lost[job_id] = "submitted (the API returned its id) but not in the database"
        elif job.state not in TERMINAL:
            found.lost[job_id] = f"still {job.state} after the run drained ({job.reason_code}: {job.reason})"
        elif job.state == "lost":
            found.lost[job_id] = f"ended lost: {job.reason}"
        elif job.state in ("failed", "timeout") and not job.reason:
            found.lost[job_id] = f"ended {job.state} with no reason"
        elif job.state == "cancelled" and job_id not in harness.cancel_asked:
            found.lost[job_id] = f"ended cancelled though nobody asked: {job.reason}"
        elif job.state in ("failed", "timeout"):
            found.failed_with_reason[job_id] = f"{job.state}: {job.reason}"


def _check_twice(found: Findings, job: JobFacts, runs: list[Run]) -> None:
    if len(runs) > job.restarts + 1:
        starts = ", ".join(f"{r.start_s:.3f}" for r in runs)
        found.run_twice[job.id] = (
            f"{len(runs)} real runs (at {starts}) but {job.restarts} recorded preemption(s)/requeue(s); "
            f"state {job.state}"
        )
        return
    for a, b in itertools.pairwise(runs):
        if a.end_s is not None and b.start_s < a.end_s:  # a run killed without a last line proves nothing
            found.run_twice[job.id] = f"runs overlap: {a.start_s:.3f}-{a.end_s} and {b.start_s:.3f}"
            return


def _check_holds(found: Findings, runs: Sequence[Run]) -> None:
    per_gpu: defaultdict[tuple[str, int], list[Run]] = defaultdict(list)
    for run in runs:
        for held_gpu in run.gpus:
            per_gpu[held_gpu].append(run)
    for (node, gpu), held in sorted(per_gpu.items()):
        held.sort(key=lambda r: r.start_s)
        latest: Run | None = None  # the run that holds the GPU longest among those started so far
        for run in held:
            if latest is not None and latest.end_s is not None and run.start_s < latest.end_s:
                found.gpu_double_holds.append(
                    f"{node} GPU {gpu}: job {latest.job_id} ran {latest.start_s:.3f}-{latest.end_s:.3f} "
                    f"({latest.how}), job {run.job_id} started {run.start_s:.3f}"
                )
            if latest is None or (run.end_s or run.start_s) > (latest.end_s or latest.start_s):
                latest = run


def _quote(rate: Rate, gpu_s: Fraction) -> int:
    return quote_krw(rate, max(Fraction(0), gpu_s))


def _pair(job: JobFacts, runs: list[Run]) -> tuple[list[list[Run]], list[Run]]:
    """Each segment's real runs (a run belongs to the latest segment that began before it: the decision
    precedes the process), and the runs no segment began before."""
    per_segment: list[list[Run]] = [[] for _ in job.segments]
    orphans = []
    for run in runs:
        index = _segment_index(job, run)
        if index is None:
            orphans.append(run)
        else:
            per_segment[index].append(run)
    return per_segment, orphans


def _check_charge(found: Findings, job: JobFacts, runs: list[Run]) -> None:
    segments = job.segments
    per_segment, orphans = _pair(job, runs)
    charged_s = sum((s.gpu_s for s in segments), Fraction(0))
    charged_krw = sum(s.cost_krw for s in segments)
    second_s = Fraction(SECOND_S) * job.gpus
    unseen = [  # stopped while the process started: its GPU time is what was charged
        seg.gpu_s
        for seg, seg_runs in zip(segments, per_segment, strict=True)
        if not seg_runs and seg.gpu_s <= Fraction(UNSEEN_START_S) * job.gpus and job.stopped_early
    ]
    real_s = Fraction(sum(len(r.gpus) * r.held_s for r in orphans)) + sum(unseen, Fraction(0))
    tolerance_krw = math.ceil(job.rate.krw_per_gpu_hour / 3600 * second_s * max(1, len(segments))) + 1
    problems = []
    if orphans:
        problems.append(
            f"{len(orphans)} real run(s) before any metered segment (at {orphans[0].start_s:.3f})"
        )
    for seg, seg_runs in zip(segments, per_segment, strict=True):
        ran_s = _charged_run_s(seg, seg_runs)
        real_s += ran_s
        if len(seg_runs) > 1:
            problems.append(f"{len(seg_runs)} real runs in the one segment from {seg.start_s:.3f}")
        elif abs(seg.gpu_s - ran_s) > second_s and not (not seg_runs and seg.gpu_s in unseen):
            how = f"ran {float(ran_s):.3f} GPU-s" if seg_runs else "no real run"
            stop = f", {seg_runs[0].how} at {seg_runs[0].end_s:.3f}" if seg_runs else ""
            problems.append(
                f"segment {seg.start_s:.3f}-{seg.end_s:.3f} charged {float(seg.gpu_s):.3f} GPU-s, {how}{stop}"
            )
    if abs(charged_krw - _quote(job.rate, real_s)) > tolerance_krw:
        problems.append(f"charged {charged_krw} won, its real GPU time costs {_quote(job.rate, real_s)} won")
    if charged_krw != _quote(job.rate, charged_s):
        problems.append(
            f"charged {charged_krw} won for {float(charged_s):.6f} GPU-s, whose quote is "
            f"{_quote(job.rate, charged_s)} won (segments: {[s.cost_krw for s in segments]})"
        )
    if problems:
        found.charge_mismatches[job.id] = f"state {job.state}, {len(segments)} segment(s): " + "; ".join(
            problems[:3]
        )


def _charged_run_s(seg: Segment, runs: list[Run]) -> Fraction:
    """The real GPU time a segment's runs should be charged: until each run ended, or, for a run asked
    to stop, until the signal where that is what the segment holds (a preemption: its grace period is
    free; a cancel is charged to the end)."""
    held = Fraction(sum(len(r.gpus) * r.held_s for r in runs))
    to_signal = Fraction(sum(len(r.gpus) * r.to_signal_s for r in runs))
    return to_signal if abs(seg.gpu_s - to_signal) < abs(seg.gpu_s - held) else held


def _segment_index(job: JobFacts, run: Run) -> int | None:
    """The index of the metered segment that contains ``run``'s start."""
    best = None
    for index, seg in enumerate(job.segments):
        if seg.start_s <= run.start_s + CLOCK_SLACK_S and (
            best is None or seg.start_s > job.segments[best].start_s
        ):
            best = index
    return best


def _check_drained(found: Findings, job: JobFacts, runs: list[Run], drains: Sequence[Drain]) -> None:
    for run in runs:
        nodes = {node for node, _ in run.gpus}
        for drain in drains:
            if drain.node in nodes and drain.on_s + DRAIN_SETTLE_S < run.start_s < drain.off_s:
                late_s = run.start_s - drain.on_s
                found.drained_starts[job.id] = (
                    f"started on {drain.node} at {run.start_s:.3f}, {late_s:.3f} s after it was taken out "
                    f"of service ({drain.on_s:.3f}-{drain.off_s:.3f})"
                )
                return


def drains_mid_job(runs: Sequence[Run], drains: Sequence[Drain]) -> int:
    """How many drains took a node out of service while a job was running on it."""
    return sum(
        1
        for drain in drains
        if any(
            drain.node in {node for node, _ in run.gpus}
            and run.start_s < drain.on_s < (run.end_s if run.end_s is not None else run.start_s)
            for run in runs
        )
    )


def timing(jobs: dict[int, JobFacts], runs: Sequence[Run]) -> dict[str, float]:
    """How far real runs stray from their segments, in seconds: from the decision (segment start) to
    the process's first line, and from the segment's end to the process's exit (positive: it held its
    GPUs after they were given back), as p50 / p99 / max."""
    by_job: defaultdict[int, list[Run]] = defaultdict(list)
    for run in runs:
        by_job[run.job_id].append(run)
    lags, overruns = [], []
    for job_id, job_runs in by_job.items():
        job = jobs.get(job_id)
        if job is None:
            continue
        per_segment, _ = _pair(job, sorted(job_runs, key=lambda r: r.start_s))
        for seg, seg_runs in zip(job.segments, per_segment, strict=True):
            if len(seg_runs) == 1:
                lags.append(seg_runs[0].start_s - seg.start_s)
                end_s = seg_runs[0].end_s
                if end_s is not None:
                    overruns.append(end_s - seg.end_s)
    out: dict[str, float] = {}
    for name, values in (("launch_lag_s", lags), ("stop_overrun_s", overruns)):
        values.sort()
        if values:
            out[f"{name}_p50"] = round(values[len(values) // 2], 3)
            out[f"{name}_p99"] = round(values[int(0.99 * (len(values) - 1))], 3)
            out[f"{name}_max"] = round(values[-1], 3)
    return out
