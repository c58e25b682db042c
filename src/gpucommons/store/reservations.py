"""Reservations (design note 0016, "Reservations in the service"): whole nodes of one model held for a
project from a start time for a duration, once or repeating. Rows and the repository that creates,
lists, shows and cancels them, and the live reservations the scheduler's snapshot carries. Flushes,
never commits.

Every check of a new reservation runs before anything is added, so bad input stores nothing: a model
the cluster lacks (the refusal lists its models), GPUs that are not whole nodes of the model or more
than its pool holds (the refusal names the node and pool sizes), a start in the past, a repetition
shorter than an occurrence or than an hour, an NVLink domain or network block smaller than the
reservation, and an overlap with other live reservations of the model that would hold more than its
pool at some instant (the refusal names them; every occurrence inside ``reserving.CHECK_HORIZON_S`` is
compared). A PI's reservation must also lie within the project's award: every occurrence covered by
active awards of the model whose guaranteed GPUs hold it together with the project's other
reservations of the model at that instant.

A reservation is cancelled, never deleted: ``cancelled_at`` is set once, by a conditional update, and
cancelling again changes nothing. ``last_end_at`` is when its last occurrence ends (NULL: it repeats
without end), so the scheduler reads only reservations still to come.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Integer,
    Row,
    String,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from gpucommons.domain.cluster import Cluster
from gpucommons.domain.reservation import WITHIN, Reservation
from gpucommons.errors import ConflictError, InvalidRequestError, PermissionDeniedError
from gpucommons.reserving import (
    CHECK_HORIZON_S,
    MIN_EVERY_S,
    ModelPool,
    cluster_models,
    first_overbooking,
    last_end_s,
    model_pool,
)
from gpucommons.store.awards import AwardRow
from gpucommons.store.base import Base, UtcDateTime, get_row, one_of, to_dt, to_s
from gpucommons.store.tenancy import ProjectRow, get_project

ReservationState = Literal["scheduled", "active", "ended", "cancelled"]
NEW_ID = 0  # the id a reservation being checked goes by, below every stored one
ADVISORY_LOCK_BASE = 0x67707563 << 32  # "gpuc" in the high half of the 64-bit key, a model's CRC below


class ReservationRow(Base):
    """``gpus`` GPUs of ``model`` (whole nodes) for ``project_id`` over [start_at, end_at), repeated
    every ``every_s`` seconds ``occurrences`` times (NULL: once; occurrences NULL with a repetition:
    without end), inside one NVLink domain or network block where ``within`` says so; ``lend_idle``
    lets short preemptible jobs of others use reserved GPUs the project leaves idle."""

    __tablename__ = "reservations"
    __table_args__ = (
        CheckConstraint("gpus >= 1", name="gpus"),
        CheckConstraint("end_at > start_at", name="period"),
        CheckConstraint("every_s IS NULL OR every_s > 0", name="every"),
        CheckConstraint(
            "occurrences IS NULL OR (occurrences >= 1 AND every_s IS NOT NULL)", name="occurrences"
        ),
        CheckConstraint(one_of("within", WITHIN), name="within"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    model: Mapped[str] = mapped_column(String(64))
    gpus: Mapped[int] = mapped_column(Integer)
    start_at: Mapped[datetime] = mapped_column(UtcDateTime)
    end_at: Mapped[datetime] = mapped_column(UtcDateTime)
    every_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    occurrences: Mapped[int | None] = mapped_column(Integer, nullable=True)
    within: Mapped[str] = mapped_column(String(16), default="")
    lend_idle: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_end_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    def policy(self, tenant: str) -> Reservation:
        return reservation_of(self, tenant)

    def state_at(self, now: datetime) -> ReservationState:
        """``cancelled``, ``ended`` (every occurrence is over), ``active`` (one is in force) or
        ``scheduled``."""
        if self.cancelled_at is not None:
            return "cancelled"
        window = self.policy("").window_at(to_s(now))
        if window is None:
            return "ended"
        return "active" if window[0] <= to_s(now) else "scheduled"

    def window_at(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The occurrence in force at ``now`` or the next one, unless cancelled or over."""
        window = self.policy("").window_at(to_s(now)) if self.cancelled_at is None else None
        return (to_dt(window[0]), to_dt(window[1])) if window is not None else None


def reservation_of(row: ReservationRow | Row[*tuple[Any, ...]], tenant: str) -> Reservation:
    """The policy's view of a row (or of its columns), in policy seconds; ``tenant`` is the project's
    name, as its jobs carry it."""
    return Reservation(
        id=row.id,
        tenant=tenant,
        gpus=row.gpus,
        start_s=to_s(row.start_at),
        end_s=to_s(row.end_at),
        model=row.model,
        within=row.within,
        lend_idle=row.lend_idle,
        every_s=float(row.every_s) if row.every_s is not None else None,
        occurrences=row.occurrences,
    )


@dataclass(frozen=True)
class ReservationSpec:
    """A reservation as asked for, before it is checked and stored; ``duration_s`` is an occurrence's."""

    project_id: int
    model: str
    gpus: int
    start_at: datetime
    duration_s: float
    every_s: int | None = None
    occurrences: int | None = None
    within: str = ""
    lend_idle: bool = False


def create_reservation(
    session: Session,
    cluster: Cluster,
    spec: ReservationSpec,
    user_id: int,
    now: datetime,
    *,
    within_award: bool = False,
) -> ReservationRow:
    """Check ``spec`` whole against the cluster and the live reservations, then store it:
    ``InvalidRequestError`` (422) for a reservation that could never be held, ``ConflictError`` (409)
    for one that overlaps others beyond the pool, ``PermissionDeniedError`` (403) for one beyond the
    project's award where ``within_award`` (a PI's), ``NotFoundError`` for an unknown project; nothing
    stored on any of them."""
    project = get_project(session, spec.project_id)
    pool = _check_shape(cluster, spec, now)
    _one_writer_per_model(session, pool.model)
    new = _policy_view(spec, pool.model)
    live = [
        row.policy(str(row.project_id))
        for row in list_reservations(session, now=now)
        if row.model == pool.model
    ]
    clash = first_overbooking(new, live, pool.gpus)
    if clash is not None:
        others = ", ".join(f"reservation {i}" for i in clash.others)
        raise ConflictError(
            f"{spec.gpus} GPUs of {pool.model} would overlap {others} at {_when(clash.at_s)}: "
            f"{clash.gpus} GPUs reserved at once, the pool has {pool.gpus}"
        )
    if within_award:
        own = [r for r in live if r.tenant == str(project.id)]
        _check_award(session, project, new, own)
    last = last_end_s(new)
    row = ReservationRow(
        project_id=project.id,
        model=pool.model,
        gpus=spec.gpus,
        start_at=spec.start_at,
        end_at=to_dt(new.end_s),
        every_s=spec.every_s,
        occurrences=spec.occurrences,
        within=spec.within,
        lend_idle=spec.lend_idle,
        created_by=user_id,
        created_at=now,
        last_end_at=to_dt(last) if last is not None else None,
    )
    session.add(row)
    session.flush()
    return row


def _one_writer_per_model(session: Session, model: str) -> None:
    """Creations of reservations of one model take turns until they commit, so two of them cannot both
    pass the overlap check on a pool with room for one. PostgreSQL: a transaction-scoped advisory lock
    keyed by the model; SQLite has one writer at a time already (the service's ``write_lock``)."""
    if session.get_bind().dialect.name == "postgresql":
        key = ADVISORY_LOCK_BASE + zlib.crc32(model.encode())
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def _check_shape(cluster: Cluster, spec: ReservationSpec, now: datetime) -> ModelPool:
    """What can be checked against the cluster and the clock alone; the model's pool."""
    pool = model_pool(cluster, spec.model)
    if pool is None:
        raise InvalidRequestError(
            f"no pool has model {spec.model!r}; this cluster has {', '.join(cluster_models(cluster))}"
        )
    if spec.gpus < 1 or spec.gpus % pool.node_gpus:
        raise InvalidRequestError(
            f"a reservation holds whole nodes: {spec.gpus} GPUs is not a multiple of {pool.model}'s "
            f"{pool.node_gpus} GPUs a node"
        )
    if spec.gpus > pool.gpus:
        raise InvalidRequestError(
            f"{spec.gpus} GPUs of {pool.model} is more than its pool: {pool.gpus} GPUs in all"
        )
    if spec.start_at < now:
        raise InvalidRequestError(
            f"the start {spec.start_at.isoformat(timespec='seconds')} is in the past "
            f"(now {now.isoformat(timespec='seconds')})"
        )
    if spec.duration_s <= 0:
        raise InvalidRequestError(f"a reservation must last more than 0 s, got {spec.duration_s:g} s")
    if spec.occurrences is not None and spec.every_s is None:
        raise InvalidRequestError("occurrences need a repetition (every)")
    if spec.occurrences is not None and spec.occurrences < 1:
        raise InvalidRequestError(f"occurrences must be at least 1, got {spec.occurrences}")
    if spec.every_s is not None and spec.every_s < max(spec.duration_s, MIN_EVERY_S):
        raise InvalidRequestError(
            f"a reservation repeats at most hourly and not before an occurrence ends: every {spec.every_s} s "
            f"is less than {max(spec.duration_s, MIN_EVERY_S):g} s"
        )
    if spec.within not in WITHIN:
        raise InvalidRequestError(f"within must be nvlink, block or empty, got {spec.within!r}")
    largest = {"nvlink": (pool.nvlink_gpus, "NVLink domain"), "block": (pool.block_gpus, "network block")}
    if spec.within in largest and spec.gpus > largest[spec.within][0]:
        gpus, what = largest[spec.within]
        raise InvalidRequestError(
            f"{spec.gpus} GPUs do not fit in one {what}: {pool.model}'s largest holds {gpus} GPUs"
        )
    try:
        spec.start_at + timedelta(seconds=spec.duration_s + (spec.every_s or 0) * (spec.occurrences or 1))
        spec.start_at + timedelta(seconds=spec.duration_s + CHECK_HORIZON_S)
    except OverflowError:
        raise InvalidRequestError("the reservation ends past the end of the calendar") from None
    return pool


def _policy_view(spec: ReservationSpec, model: str) -> Reservation:
    start_s = to_s(spec.start_at)
    return Reservation(
        id=NEW_ID,
        tenant=str(spec.project_id),
        gpus=spec.gpus,
        start_s=start_s,
        end_s=start_s + spec.duration_s,
        model=model,
        within=spec.within,
        lend_idle=spec.lend_idle,
        every_s=float(spec.every_s) if spec.every_s is not None else None,
        occurrences=spec.occurrences,
    )


def _check_award(session: Session, project: ProjectRow, new: Reservation, own: list[Reservation]) -> None:
    """A PI reserves within the project's award: the active awards of the model that cover every
    occurrence guarantee, together, what the project then reserves."""
    last = last_end_s(new)
    if last is None:
        raise PermissionDeniedError(
            "a reservation repeating without end outlasts every award; give its occurrences, or ask an admin"
        )
    query = select(AwardRow.guaranteed_gpus, AwardRow.model).where(
        AwardRow.project_id == project.id,
        AwardRow.status == "active",
        AwardRow.starts_at <= to_dt(new.start_s),
        AwardRow.ends_at >= to_dt(last),
    )
    model = (new.model or "").lower()
    guaranteed = sum(gpus for gpus, m in session.execute(query) if m.lower() == model)
    clash = first_overbooking(new, own, guaranteed)
    if clash is not None:
        plural = "s" if len(clash.others) > 1 else ""
        held = f" counting reservation{plural} {', '.join(map(str, clash.others))}" if clash.others else ""
        raise PermissionDeniedError(
            f"project {project.name!r} would reserve {clash.gpus} GPUs of {new.model} at "
            f"{_when(clash.at_s)}{held}; its active awards guarantee {guaranteed} until {_when(last)} "
            "(an admin may reserve beyond them)"
        )


def _when(seconds: float) -> str:
    return to_dt(seconds).isoformat(timespec="minutes")


def get_reservation(session: Session, reservation_id: int) -> ReservationRow:
    return get_row(session, ReservationRow, reservation_id, "reservation")


def list_reservations(
    session: Session, project_ids: set[int] | None = None, now: datetime | None = None
) -> list[ReservationRow]:
    """Reservations (all, or of ``project_ids``), oldest first; with ``now``, only those not cancelled
    with an occurrence still to end."""
    query = select(ReservationRow).order_by(ReservationRow.id)
    if project_ids is not None:
        query = query.where(ReservationRow.project_id.in_(project_ids))
    if now is not None:
        query = query.where(*_live_at(now))
    return list(session.scalars(query))


def _live_at(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Not cancelled, with an occurrence still to end after ``now``."""
    return (
        ReservationRow.cancelled_at.is_(None),
        or_(ReservationRow.last_end_at.is_(None), ReservationRow.last_end_at > now),
    )


def cancel_reservation(session: Session, reservation_id: int, now: datetime) -> ReservationRow:
    """Cancel from ``now`` on: the scheduler stops holding its nodes at its next cycle. A conditional
    update (only while not cancelled), so cancelling twice keeps the first time and changes nothing."""
    row = get_reservation(session, reservation_id)
    session.execute(
        update(ReservationRow)
        .where(ReservationRow.id == reservation_id, ReservationRow.cancelled_at.is_(None))
        .values(cancelled_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(row)
    return row


def active_reservations(session: Session, tenants: dict[int, str], now: datetime) -> tuple[Reservation, ...]:
    """The live reservations as the policy sees them, by id, each with its project's name as tenant;
    one of a project not in ``tenants`` (created after they were read) waits for the next cycle. Read
    as columns, not rows: every scheduler cycle reads them."""
    query = select(*_POLICY_COLUMNS).where(*_live_at(now)).order_by(ReservationRow.id)
    return tuple(
        reservation_of(r, tenants[r.project_id]) for r in session.execute(query) if r.project_id in tenants
    )


_POLICY_COLUMNS = (
    ReservationRow.id,
    ReservationRow.project_id,
    ReservationRow.gpus,
    ReservationRow.start_at,
    ReservationRow.end_at,
    ReservationRow.model,
    ReservationRow.within,
    ReservationRow.lend_idle,
    ReservationRow.every_s,
    ReservationRow.occurrences,
)
