"""Each project's decayed usage of ended segments, kept as running sums between the live engine's
cycles instead of summed again from every usage row of the last ten half-lives (design note 0013).

A segment holding ``g`` GPUs over ``[a, b]`` weighs ``g * tau * (2^-(now-b)/h - 2^-(now-a)/h)`` at
``now`` (``tau = h / ln 2``), which is ``2^-(now-t0)/h`` times its weight at a reference time ``t0``.
So the sums are kept at ``t0``, one term per job, and scaled to ``now`` when read.

A job's usage rows are written only in a transaction that also changes the job (``end_segment`` and
``extend_segment`` run on a claimed job, and add to its service or end its run), so of the jobs the
job view read again only those whose service grew or whose run ended (``JobView.serviced``) can have
new terms: their rows are read again, and their terms replaced. Every ``REBUILD_S`` (and
whenever the job view read everything) the sums are computed afresh at a new ``t0``: that is when
segments that ended more than ``USAGE_HORIZON_HALF_LIVES`` half-lives ago leave the sums, so between
rebuilds a segment may be counted up to ``REBUILD_S`` past the horizon, at less than 0.1 % of its
weight.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from gpucommons.store.base import to_dt, to_s
from gpucommons.store.usage import UsageRow

USAGE_HORIZON_HALF_LIVES = 10  # older segments weigh < 0.1 % and are left out of decayed usage
REBUILD_S = 3600.0
IDS_PER_QUERY = 500


class DecayedUsage:
    """Decayed GPU-seconds of ended segments per project id, half-life ``half_life_s``."""

    def __init__(self, half_life_s: float) -> None:
        self.half_life_s = half_life_s
        self._t0: float | None = None
        self._since = to_dt(0.0)  # segments that ended after this count
        self._per_job: dict[int, tuple[int, float]] = {}  # job id -> (project id, its term at t0)
        self._per_project: defaultdict[int, float] = defaultdict(float)

    def refresh(self, session: Session, changed_jobs: Iterable[int] | None, now: float) -> bool:
        """Take in the usage rows of ``changed_jobs`` (``None``: everything changed); whether the sums
        were computed afresh."""
        if changed_jobs is None or self._t0 is None or now - self._t0 > REBUILD_S:
            self._rebuild(session, now)
            return True
        ids = sorted(set(changed_jobs))
        terms: dict[int, tuple[int, float]] = {}
        for i in range(0, len(ids), IDS_PER_QUERY):
            chunk = ids[i : i + IDS_PER_QUERY]
            query = self._query(self._since).where(UsageRow.job_id.in_(chunk))
            for job_id, project_id, gpus, started_at, ended_at in session.execute(query):
                term = terms.get(job_id, (project_id, 0.0))[1]
                terms[job_id] = (project_id, term + self._term(gpus, started_at, ended_at))
        for job_id in ids:
            old = self._per_job.pop(job_id, None)
            if old is not None:
                self._per_project[old[0]] -= old[1]
            new = terms.get(job_id)
            if new is not None:
                self._per_job[job_id] = new
                self._per_project[new[0]] += new[1]
        return False

    def at(self, now: float) -> dict[int, float]:
        """Project id -> decayed GPU-seconds of its ended segments at ``now``."""
        if self._t0 is None:
            return {}
        scale = 2.0 ** (-(now - self._t0) / self.half_life_s)
        return {p: v * scale for p, v in self._per_project.items() if v}

    def _rebuild(self, session: Session, now: float) -> None:
        since = to_dt(now - USAGE_HORIZON_HALF_LIVES * self.half_life_s)
        rows = list(session.execute(self._query(since)))
        self._t0, self._since = now, since
        self._per_job = {}
        self._per_project = defaultdict(float)
        for job_id, project_id, gpus, started_at, ended_at in rows:
            term = self._term(gpus, started_at, ended_at)
            old = self._per_job.get(job_id, (project_id, 0.0))[1]
            self._per_job[job_id] = (project_id, old + term)
            self._per_project[project_id] += term

    def _query(self, since: datetime) -> Select[int, int, int, datetime, datetime]:
        return select(
            UsageRow.job_id, UsageRow.project_id, UsageRow.gpus, UsageRow.started_at, UsageRow.ended_at
        ).where(UsageRow.ended_at > since)

    def _term(self, gpus: int, started_at: datetime, ended_at: datetime) -> float:
        assert self._t0 is not None
        half = self.half_life_s
        tau = half / math.log(2.0)
        a, b = to_s(started_at), to_s(ended_at)
        return float(gpus * tau * (2.0 ** ((b - self._t0) / half) - 2.0 ** ((a - self._t0) / half)))
