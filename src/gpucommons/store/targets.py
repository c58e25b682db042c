"""Declared targets of the centre or of one program (design note 0014): "startups receive at least
15 % of the GPU-hours", "academia's p90 wait at most 24 h", "at least 5,000 GPU-hours outside the
capital". Rows and the repository that creates, lists and deletes them; what a target attained in a
period is ``store/attainment.py``'s. Flushes, never commits.

A target names one group the way the usage reports name it (``by`` a grouping, ``group`` its value),
so its attainment is read off the very report lines (``store/reports.py``). Every check of a new target
runs before anything is added, so bad input stores nothing: an unknown kind, grouping or period
length, a group that names nothing, a share outside 0..100 %, a percentile on a target that is no wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CheckConstraint, Float, ForeignKey, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from gpucommons.domain.accelerators import CATALOG
from gpucommons.domain.institution import INSTITUTION_KINDS
from gpucommons.errors import InvalidRequestError
from gpucommons.store.base import Base, UtcDateTime, add_named, get_row, one_of
from gpucommons.store.calls import ProgramRow, get_program
from gpucommons.store.reports import NO_AWARD, WAIT_GROUPINGS
from gpucommons.store.tenancy import REGIONS, InstitutionRow, ProjectRow

SHARE, GPU_HOURS, WAIT = "share", "gpu_hours", "wait"
TARGET_KINDS = (SHARE, GPU_HOURS, WAIT)
# What a share or a floor may be declared over: the report groupings whose values can be checked
# (a site is the cluster file's, which the store does not read).
USAGE_GROUPINGS = ("project", "institution", "kind", "region", "program", "model")
TARGET_EVERY = ("week", "month", "quarter", "year")
UNITS = {SHARE: "%", GPU_HOURS: "GPU-hours", WAIT: "hours"}
DEFAULT_WAIT_PERCENTILE = 90
MAX_BOUND = 1e9  # hours or GPU-hours, far above any period (the API's ``MAX_GPU_HOURS``)


class TargetRow(Base):
    """One declared target: its group (``group_by`` / ``group_value``), its scope (``program_id``;
    NULL: the whole centre), its bound (``threshold``, in ``UNITS[kind]``; a share's and a floor's is
    a minimum, a wait's a maximum, of its ``percentile``-th wait) and its period length ``every``."""

    __tablename__ = "targets"
    __table_args__ = (
        CheckConstraint(one_of("kind", TARGET_KINDS), name="kind"),
        CheckConstraint(one_of("group_by", USAGE_GROUPINGS), name="group_by"),
        CheckConstraint(one_of("every", TARGET_EVERY), name="every"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    group_by: Mapped[str] = mapped_column(String(16))
    group_value: Mapped[str] = mapped_column(String(200))
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id"), nullable=True)
    threshold: Mapped[float] = mapped_column(Float)
    percentile: Mapped[int | None] = mapped_column(Integer, nullable=True)  # wait targets only
    every: Mapped[str] = mapped_column(String(16), default="month")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    @property
    def unit(self) -> str:
        return UNITS[self.kind]

    @property
    def description(self) -> str:
        """The target in words, e.g. ``kind startup: share of GPU-hours >= 15 % per month``."""
        group = f"{self.group_by} {self.group_value}"
        scope = f" in program {self.program_id}" if self.program_id is not None else ""
        if self.kind == SHARE:
            what = f"share of GPU-hours{scope} >= {self.threshold:g} %"
        elif self.kind == GPU_HOURS:
            what = f"GPU-hours{scope} >= {self.threshold:g}"
        else:
            what = f"p{self.percentile} wait{scope} <= {self.threshold:g} h"
        return f"{group}: {what} per {self.every}"


@dataclass(frozen=True)
class TargetSpec:
    """A target as declared, before it is checked and stored."""

    name: str
    kind: str
    by: str
    group: str
    threshold: float
    program_id: int | None = None
    percentile: int | None = None
    every: str = "month"


def create_target(session: Session, spec: TargetSpec, now: datetime) -> TargetRow:
    """Check ``spec`` whole, then store it; ``InvalidRequestError`` (422), ``NotFoundError`` for an
    unknown program (404) or ``ConflictError`` for a name taken (409), and nothing stored."""
    _check_shape(spec)
    if spec.program_id is not None:
        get_program(session, spec.program_id)
    _check_group(session, spec.by, spec.group)
    percentile = (spec.percentile or DEFAULT_WAIT_PERCENTILE) if spec.kind == WAIT else None
    row = TargetRow(
        name=spec.name,
        kind=spec.kind,
        group_by=spec.by,
        group_value=spec.group,
        program_id=spec.program_id,
        threshold=float(spec.threshold),
        percentile=percentile,
        every=spec.every,
        created_at=now,
    )
    return add_named(session, row, TargetRow.name, spec.name, "target")


def _check_shape(spec: TargetSpec) -> None:
    """What can be checked without the database: kind, grouping, period length, bound, percentile."""
    if spec.kind not in TARGET_KINDS:
        raise InvalidRequestError(f"unknown target kind {spec.kind!r}; one of: {', '.join(TARGET_KINDS)}")
    groupings = WAIT_GROUPINGS if spec.kind == WAIT else USAGE_GROUPINGS
    if spec.by not in groupings:
        raise InvalidRequestError(
            f"a {spec.kind} target cannot group by {spec.by!r}; by one of: {', '.join(groupings)}"
        )
    if spec.by == "program" and spec.program_id is not None:
        raise InvalidRequestError("a target of one program cannot group by program")
    if spec.every not in TARGET_EVERY:
        raise InvalidRequestError(
            f"a target's period must be one of {', '.join(TARGET_EVERY)}, got {spec.every!r}"
        )
    if spec.kind == SHARE and not 0.0 <= spec.threshold <= 100.0:
        raise InvalidRequestError(f"a share must lie within 0..100 %, got {spec.threshold:g} %")
    if not 0.0 <= spec.threshold <= MAX_BOUND:
        raise InvalidRequestError(
            f"a {spec.kind} bound must lie within 0..{MAX_BOUND:g} {UNITS[spec.kind]}, got {spec.threshold:g}"
        )
    if spec.percentile is not None and spec.kind != WAIT:
        raise InvalidRequestError(f"only a wait target takes a percentile, not a {spec.kind} target")
    if spec.percentile is not None and not 1 <= spec.percentile <= 100:
        raise InvalidRequestError(f"a wait percentile must lie within 1..100, got {spec.percentile}")


def _check_group(session: Session, by: str, group: str) -> None:
    """The group must name something there is (or, for a program, unawarded use)."""
    fixed: dict[str, tuple[str, ...]] = {
        "kind": INSTITUTION_KINDS,
        "region": REGIONS,
        "model": tuple(CATALOG),
    }
    if by in fixed:
        if group not in fixed[by]:
            raise InvalidRequestError(f"unknown {by} {group!r}; one of: {', '.join(fixed[by])}")
        return
    names = {"project": ProjectRow.name, "institution": InstitutionRow.name, "program": ProgramRow.name}
    if by == "program" and group == NO_AWARD:
        return
    if session.scalar(select(names[by]).where(names[by] == group)) is None:
        raise InvalidRequestError(f"no {by} is called {group!r}")


def get_target(session: Session, target_id: int) -> TargetRow:
    return get_row(session, TargetRow, target_id, "target")


def list_targets(session: Session) -> list[TargetRow]:
    return list(session.scalars(select(TargetRow).order_by(TargetRow.id)))


def delete_target(session: Session, target_id: int) -> None:
    """Remove a target; its notices stay in the outbox (``NotFoundError`` when there is none)."""
    session.delete(get_target(session, target_id))
    session.flush()
