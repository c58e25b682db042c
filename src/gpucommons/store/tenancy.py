"""Tenancy: institutions, projects, users, memberships and API tokens, as rows and repositories.

Functions take a ``Session``, validate against stored state, add or change rows and ``flush`` (so ids
and constraint errors appear at once) but never commit: the route or CLI command that called them owns
the transaction, so a request that fails half-way stores nothing. The allowed values of enumerated
columns are the tuples below, shared with the API schemas.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from gpucommons.domain.contact import EMAIL_PATTERN, MAX_EMAIL
from gpucommons.domain.institution import INSTITUTION_KINDS
from gpucommons.errors import ConflictError, InvalidRequestError, NotFoundError
from gpucommons.store.base import Base, UtcDateTime, add_named, get_row, one_of, utcnow

REGIONS = ("capital", "non_capital")


USER_ROLES = ("admin", "reviewer", "user")


PROJECT_ROLES = ("pi", "member")


class InstitutionRow(Base):
    """An organisation that holds projects; its kind and region drive discounts and preference."""

    __tablename__ = "institutions"
    __table_args__ = (
        CheckConstraint(one_of("kind", INSTITUTION_KINDS), name="kind"),
        CheckConstraint(one_of("region", REGIONS), name="region"),
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
    __table_args__ = (CheckConstraint(one_of("role", USER_ROLES), name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="user")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Where notices about their projects' awards go (design note 0012); NULL: none are mailed to them.
    email: Mapped[str | None] = mapped_column(String(MAX_EMAIL), nullable=True)


class MembershipRow(Base):
    """A user's role in one project: ``pi`` (manages members, applies for awards) or ``member``."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("user_id", "project_id", name="uq_memberships_user_project"),
        CheckConstraint(one_of("role", PROJECT_ROLES), name="role"),
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


TOKEN_PREFIX = "gpuc_"


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidRequestError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


def _check_name(what: str, name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidRequestError(f"{what} name must not be empty")
    return name


def create_institution(
    session: Session, name: str, kind: str, region: str, youth_startup: bool = False
) -> InstitutionRow:
    name = _check_name("institution", name)
    _check_choice("kind", kind, INSTITUTION_KINDS)
    _check_choice("region", region, REGIONS)
    if youth_startup and kind != "startup":
        raise InvalidRequestError("youth_startup applies only to institutions of kind startup")
    row = InstitutionRow(name=name, kind=kind, region=region, youth_startup=youth_startup)
    return add_named(session, row, InstitutionRow.name, name, "institution")


def get_institution(session: Session, institution_id: int) -> InstitutionRow:
    return get_row(session, InstitutionRow, institution_id, "institution")


def list_institutions(session: Session) -> list[InstitutionRow]:
    return list(session.scalars(select(InstitutionRow).order_by(InstitutionRow.id)))


def create_project(session: Session, name: str, institution_id: int, sovereign: bool = False) -> ProjectRow:
    name = _check_name("project", name)
    get_institution(session, institution_id)
    row = ProjectRow(name=name, institution_id=institution_id, sovereign=sovereign)
    return add_named(session, row, ProjectRow.name, name, "project")


def get_project(session: Session, project_id: int) -> ProjectRow:
    return get_row(session, ProjectRow, project_id, "project")


def list_projects(session: Session, only_ids: set[int] | None = None) -> list[ProjectRow]:
    """All projects, or only those in ``only_ids`` (the caller's own, for non-staff)."""
    query = select(ProjectRow).order_by(ProjectRow.id)
    if only_ids is not None:
        query = query.where(ProjectRow.id.in_(only_ids))
    return list(session.scalars(query))


def set_membership(session: Session, project_id: int, user_id: int, role: str) -> MembershipRow:
    """Add a user to a project, or change their role if already a member."""
    _check_choice("project role", role, PROJECT_ROLES)
    get_project(session, project_id)
    get_user(session, user_id)
    row = session.scalar(
        select(MembershipRow).where(MembershipRow.project_id == project_id, MembershipRow.user_id == user_id)
    )
    if row is None:
        row = MembershipRow(project_id=project_id, user_id=user_id, role=role)
        session.add(row)
    else:
        row.role = role
    session.flush()
    return row


def remove_membership(session: Session, project_id: int, user_id: int) -> None:
    row = session.scalar(
        select(MembershipRow).where(MembershipRow.project_id == project_id, MembershipRow.user_id == user_id)
    )
    if row is None:
        raise NotFoundError(f"user {user_id} is not a member of project {project_id}")
    session.delete(row)
    session.flush()


def list_members(session: Session, project_id: int) -> list[tuple[MembershipRow, UserRow]]:
    get_project(session, project_id)
    query = (
        select(MembershipRow, UserRow)
        .join(UserRow, UserRow.id == MembershipRow.user_id)
        .where(MembershipRow.project_id == project_id)
        .order_by(UserRow.id)
    )
    return [(m, u) for m, u in session.execute(query)]


def project_roles(session: Session, user_id: int) -> dict[int, str]:
    """The user's role in each project they belong to: project id -> ``pi`` | ``member``."""
    query = select(MembershipRow.project_id, MembershipRow.role).where(MembershipRow.user_id == user_id)
    return {pid: role for pid, role in session.execute(query)}


def _check_email(email: str | None) -> str | None:
    if email is None:
        return None
    if len(email) > MAX_EMAIL or not re.fullmatch(EMAIL_PATTERN, email):
        raise InvalidRequestError(f"{email[:80]!r} is not one e-mail address")
    return email


def create_user(session: Session, name: str, role: str = "user", email: str | None = None) -> UserRow:
    name = _check_name("user", name)
    _check_choice("role", role, USER_ROLES)
    row = UserRow(name=name, role=role, email=_check_email(email))
    return add_named(session, row, UserRow.name, name, "user")


def set_user_email(session: Session, user_id: int, email: str | None) -> UserRow:
    """Set (or, with ``None``, clear) where a user's notices are mailed."""
    row = get_user(session, user_id)
    row.email = _check_email(email)
    session.flush()
    return row


def get_user(session: Session, user_id: int) -> UserRow:
    return get_row(session, UserRow, user_id, "user")


def list_users(session: Session) -> list[UserRow]:
    return list(session.scalars(select(UserRow).order_by(UserRow.id)))


def hash_token(raw: str) -> str:
    """The stored form of a token: tokens are random, so an unsalted SHA-256 is enough to make a
    leaked database useless for logging in."""
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(
    session: Session, user_id: int, now: datetime, expires_at: datetime | None = None, label: str = ""
) -> tuple[ApiTokenRow, str]:
    """A new token for the user; returns the row and the raw token, which is never stored."""
    get_user(session, user_id)
    if expires_at is not None and expires_at <= now:
        raise InvalidRequestError(f"expires_at {expires_at.isoformat()} is not in the future")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiTokenRow(
        token_sha256=hash_token(raw), user_id=user_id, expires_at=expires_at, label=label, created_at=now
    )
    session.add(row)
    session.flush()
    return row, raw


TokenState = Literal["active", "expired", "revoked"]


def token_state(row: ApiTokenRow, now: datetime) -> TokenState:
    """``revoked``, ``expired`` or ``active``: what a request carrying this token would meet."""
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    return "active"


@dataclass(frozen=True)
class TokenHolder:
    """What one bearer token stands for: the token's own state and its owner with their project roles
    (project id -> ``pi`` | ``member``), read in one query per request."""

    token_id: int
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    user_id: int
    name: str
    role: str
    projects: dict[int, str]


def token_holder(session: Session, raw: str) -> TokenHolder | None:
    """The token with this raw value and its owner, or ``None`` for a token never issued. One joined
    query (token, user, memberships), so a revoked token or a changed project role is seen at once by
    every server process without a cache to invalidate."""
    query = (
        select(
            ApiTokenRow.id,
            ApiTokenRow.expires_at,
            ApiTokenRow.revoked_at,
            ApiTokenRow.last_used_at,
            UserRow.id,
            UserRow.name,
            UserRow.role,
            MembershipRow.project_id,
            MembershipRow.role,
        )
        .join(UserRow, UserRow.id == ApiTokenRow.user_id)
        .outerjoin(MembershipRow, MembershipRow.user_id == UserRow.id)
        .where(ApiTokenRow.token_sha256 == hash_token(raw))
    )
    rows = session.execute(query).all()
    if not rows:
        return None
    first = rows[0]
    projects = {r[7]: r[8] for r in rows if r[7] is not None}
    return TokenHolder(first[0], first[1], first[2], first[3], first[4], first[5], first[6], projects)


def valid_token(session: Session, raw: str, now: datetime) -> ApiTokenRow | None:
    """The stored token for ``raw`` if a request carrying it would be let in now (issued, not revoked,
    not expired); ``gpuc up`` uses it to keep the admin token it stored last time."""
    row = session.scalar(select(ApiTokenRow).where(ApiTokenRow.token_sha256 == hash_token(raw)))
    return row if row is not None and token_state(row, now) == "active" else None


def touch_token(session: Session, token_id: int, now: datetime, resolution_s: float) -> bool:
    """Record that the token was used at ``now`` unless a use within ``resolution_s`` is already
    recorded. A conditional update, so concurrent requests write it once; returns whether it wrote."""
    stale = now - timedelta(seconds=resolution_s)
    result = session.execute(
        update(ApiTokenRow)
        .where(
            ApiTokenRow.id == token_id,
            or_(ApiTokenRow.last_used_at.is_(None), ApiTokenRow.last_used_at <= stale),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def get_token(session: Session, token_id: int) -> ApiTokenRow:
    return get_row(session, ApiTokenRow, token_id, "token")


def list_tokens(session: Session, user_id: int | None = None) -> list[tuple[ApiTokenRow, str]]:
    """Tokens (all, or one user's) with their owner's name, oldest first; revoked ones included, so the
    listing is also a record of what was issued."""
    query = select(ApiTokenRow, UserRow.name).join(UserRow, UserRow.id == ApiTokenRow.user_id)
    if user_id is not None:
        query = query.where(ApiTokenRow.user_id == user_id)
    return [(row, name) for row, name in session.execute(query.order_by(ApiTokenRow.id))]


def revoke_token(session: Session, token_id: int, now: datetime) -> ApiTokenRow:
    """Revoke the token from ``now`` on. A conditional update (only while not yet revoked), so two
    revocations racing keep the first time; revoking a revoked token changes nothing."""
    row = get_token(session, token_id)
    session.execute(
        update(ApiTokenRow)
        .where(ApiTokenRow.id == token_id, ApiTokenRow.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(row)
    return row


def bootstrap_admin(
    session: Session, name: str, now: datetime, expires_at: datetime | None = None
) -> tuple[UserRow, str]:
    """The first admin of a fresh database, with a token that never expires unless ``expires_at`` is
    given: the way into an empty server (``gpuc admin bootstrap`` and ``gpuc up`` call it against the
    database directly). Refused once any admin exists, so it cannot be used to mint a second way in."""
    if session.scalar(select(UserRow.id).where(UserRow.role == "admin")) is not None:
        raise ConflictError("an admin already exists; ask them for a token (gpuc admin user token)")
    user = create_user(session, name, "admin")
    _, raw = create_token(session, user.id, now, expires_at, "bootstrap")
    return user, raw
