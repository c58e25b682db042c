"""Typed results of one scheduling cycle."""

from __future__ import annotations

from dataclasses import dataclass

from gpucommons.domain.job import Job, Placement


@dataclass(frozen=True, slots=True)
class PendingReason:
    """Why a job is still waiting. ``code`` is stable (for APIs and metrics); ``detail`` is for people.

    Codes: ``never-fits`` (no pool can ever hold it), ``resources`` (no room now), ``priority`` (a job
    ahead holds the line), ``reservation`` (starting it would delay a job backfill reserved room for;
    or the room is held by a reservation, design note 0016: for a job of the reserving tenant before
    the start, "reservation 7 starts at ...; 896 of 1,024 GPUs drained", figures ``reservation``,
    ``start_s``, ``drained_gpus``, ``reserved_gpus``; for another job, the GPUs it holds and until
    when: only a job whose time limit ends before the start may use them, and during the window a
    short preemptible one where the reservation lends idle GPUs), ``quota``
    (tenant at its limit), ``not-examined`` (cycle stopped before reaching it: no free capacity), and
    the commons' stages: ``no-award``, ``budget`` and ``award-model`` (award), ``residency`` (no
    sovereign site could ever hold it), ``power`` (a site cap), ``array-limit`` (its job array already
    runs as many tasks as its ``%N`` allows; figures ``running``, ``limit``). ``figures`` holds the
    numbers behind the reason (e.g. ``draw_mw``, ``cap_mw``) for APIs and ``gpuc why``.
    """

    code: str
    detail: str
    blocking_job: int | None = None
    estimated_start_s: float | None = None
    figures: tuple[tuple[str, float], ...] = ()


CAPACITY_CODES = frozenset({"resources", "power"})
"""Reasons that mean "no room now" (as opposed to "not this tenant"): a job refused for one of them
counts toward the cycle's scan limit."""

NO_ROOM_CODES = frozenset({"resources", "reservation"})
"""Reasons a placement that failed gives (no room; no room outside the nodes reservations hold): a
queue discipline holds its line, or reserves a start, for a job that waits for one of them."""


@dataclass(frozen=True, slots=True)
class Start:
    """A decision to start ``job`` on ``placement``; ``award_id`` is the award it is charged to (when
    the award stage runs)."""

    job: Job
    placement: Placement
    borrowing: bool = False
    award_id: int | None = None


@dataclass(frozen=True, slots=True)
class Preemption:
    job_id: int
    by_job: int
    reason: str


@dataclass(frozen=True, slots=True)
class CycleResult:
    """``pending`` lists the jobs the cycle examined and left waiting; every other pending job waits for
    ``others`` (the cycle stopped early: a strict line is blocked, nothing is free, or the scan limit)."""

    starts: tuple[Start, ...]
    preemptions: tuple[Preemption, ...]
    pending: tuple[tuple[int, PendingReason], ...]
    others: PendingReason | None = None

    def reason_for(self, job_id: int) -> PendingReason | None:
        """Why a job that is still pending after this cycle waits."""
        for jid, reason in self.pending:
            if jid == job_id:
                return reason
        return self.others
