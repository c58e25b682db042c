"""ORM rows of the control plane: tenancy (institutions, projects, users, memberships, API tokens) and
allocation (programs, proposals, reviews, awards, reclaims). Jobs tables live in ``store/jobs.py``.

Enumerated columns are plain strings with CHECK constraints (portable across SQLite and PostgreSQL and
easy to extend in a migration); the allowed values are the tuples below, shared with the API schemas.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, validates

from gpucommons.domain.institution import INSTITUTION_KINDS
from gpucommons.errors import InvalidRequestError
from gpucommons.metering.pricing import whole_won
from gpucommons.store.base import Base, UtcDateTime, utcnow

REGIONS = ("capital", "non_capital")
USER_ROLES = ("admin", "reviewer", "user")
PROJECT_ROLES = ("pi", "member")
PROGRAM_STATUSES = ("open", "closed")
PROPOSAL_STATUSES = ("submitted", "awarded", "rejected")
AWARD_STATUSES = ("pending", "active", "expired", "reclaimed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def checked_won(key: str, value: int | float) -> int:
    """A money column's value as whole won (``2000.0`` becomes ``2000``); a fraction of a won or a
    negative amount is bad input, refused before anything is stored. Shared by every money column's
    ``validates`` hook so the row holds an ``int`` from the moment it is set."""
    try:
        return whole_won(value)
    except ValueError as exc:
        raise InvalidRequestError(f"{key}: {exc}") from None


class InstitutionRow(Base):
    """An organisation that holds projects; its kind and region drive discounts and preference."""

    __tablename__ = "institutions"
    __table_args__ = (
        CheckConstraint(_in("kind", INSTITUTION_KINDS), name="kind"),
        CheckConstraint(_in("region", REGIONS), name="region"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    region: Mapped[str] = mapped_column(String(16))
    youth_startup: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ProjectRow(Base):
    """The unit of tenancy: jobs, awards and balances belong to a project."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    institution_id: Mapped[int] = mapped_column(ForeignKey("institutions.id"), index=True)
    sovereign: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class UserRow(Base):
    """A person; ``role`` is global (admin, reviewer, user); project roles live in memberships."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", USER_ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="user")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class MembershipRow(Base):
    """A user's role in one project: ``pi`` (manages members, applies for awards) or ``member``."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("user_id", "project_id", name="uq_memberships_user_project"),
        CheckConstraint(_in("role", PROJECT_ROLES), name="role"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))


class ApiTokenRow(Base):
    """A bearer token, stored as its SHA-256 hex digest only: the raw token is shown once at creation.

    A token is valid until ``expires_at`` (if set) and while ``revoked_at`` is unset. Revoking keeps the
    row, so a listing still shows when a token existed, who owned it and when it was last used;
    ``last_used_at`` is written at most once per ``auth.LAST_USED_RESOLUTION_S``, not on every request.
    """

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)


class ProgramRow(Base):
    """A call for proposals: capacity in GPUs of one model handed out in whole units (8 = whole 8-GPU
    servers), with a per-organisation cap, a score bonus for non-capital applicants, pricing with
    discounts per institution kind, and a reclaim rule for unused guaranteed capacity."""

    __tablename__ = "programs"
    __table_args__ = (
        CheckConstraint(_in("status", PROGRAM_STATUSES), name="status"),
        CheckConstraint("capacity_gpus >= 0", name="capacity"),
        CheckConstraint("unit_gpus > 0", name="unit"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    model: Mapped[str] = mapped_column(String(64))
    capacity_gpus: Mapped[int] = mapped_column(Integer)
    unit_gpus: Mapped[int] = mapped_column(Integer, default=8)
    cap_per_org_gpus: Mapped[int | None] = mapped_column(Integer, nullable=True)
    non_capital_bonus: Mapped[float] = mapped_column(Float, default=0.0)
    duration_days: Mapped[int] = mapped_column(Integer)
    price_krw_per_gpu_hour: Mapped[int] = mapped_column(BigInteger, default=0)
    discounts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    youth_startup_extra_discount: Mapped[float] = mapped_column(Float, default=0.0)
    reclaim_below_utilization: Mapped[float | None] = mapped_column(Float, nullable=True)
    reclaim_after_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    @validates("price_krw_per_gpu_hour")
    def _whole_won(self, key: str, value: int | float) -> int:
        return checked_won(key, value)


class ProposalRow(Base):
    """A project's application to a program; one per project per program."""

    __tablename__ = "proposals"
    __table_args__ = (
        UniqueConstraint("program_id", "project_id", name="uq_proposals_program_project"),
        CheckConstraint(_in("status", PROPOSAL_STATUSES), name="status"),
        CheckConstraint("requested_gpus > 0", name="requested"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    submitted_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    requested_gpus: Mapped[int] = mapped_column(Integer)
    justification: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="submitted")
    submitted_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ReviewRow(Base):
    """One reviewer's score (0-100) of one proposal; scoring again replaces it."""

    __tablename__ = "reviews"
    __table_args__ = (
        UniqueConstraint("proposal_id", "reviewer_id", name="uq_reviews_proposal_reviewer"),
        CheckConstraint("score >= 0 AND score <= 100", name="score"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    score: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AwardRow(Base):
    """What a project may use: a GPU-hour budget and/or guaranteed GPUs of one model, over
    [starts_at, ends_at). ``pending`` until activated (the agreement is signed), ``active`` while it
    counts, ``expired`` after ``ends_at``, ``reclaimed`` when all its guaranteed GPUs were taken back."""

    __tablename__ = "awards"
    __table_args__ = (
        CheckConstraint(_in("status", AWARD_STATUSES), name="status"),
        CheckConstraint("guaranteed_gpus >= 0", name="guaranteed"),
        CheckConstraint("ends_at > starts_at", name="period"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id"), nullable=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), index=True)
    model: Mapped[str] = mapped_column(String(64))
    gpu_hours_budget: Mapped[float | None] = mapped_column(Float, nullable=True)
    guaranteed_gpus: Mapped[int] = mapped_column(Integer, default=0)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    gpu_hours_used: Mapped[float] = mapped_column(Float, default=0.0)
    reclaimed_gpus: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ReclaimRow(Base):
    """A record of guaranteed GPUs taken back from an award, and the utilization that justified it."""

    __tablename__ = "reclaims"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    award_id: Mapped[int] = mapped_column(ForeignKey("awards.id", ondelete="CASCADE"), index=True)
    reclaimed_gpus: Mapped[int] = mapped_column(Integer)
    utilization: Mapped[float] = mapped_column(Float)
    reclaimed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
