"""Tenancy repositories: institutions, projects, memberships, users and API tokens.

Functions take a ``Session``, validate against stored state, add or change rows and ``flush`` (so ids
and constraint errors appear at once) but never commit: the route or CLI command that called them owns
the transaction, so a request that fails half-way stores nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gpucommons.errors import ConflictError, InvalidRequestError, NotFoundError
from gpucommons.store.lookup import add_named, get_row
from gpucommons.store.models import (
    INSTITUTION_KINDS,
    PROJECT_ROLES,
    REGIONS,
    USER_ROLES,
    ApiTokenRow,
    InstitutionRow,
    MembershipRow,
    ProjectRow,
    UserRow,
)

TOKEN_PREFIX = "gpuc_"


def _check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InvalidRequestError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


def _check_name(what: str, name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidRequestError(f"{what} name must not be empty")
    return name


def count_rows(session: Session, row_type: type[object]) -> int:
    """How many rows a table holds (used by tests and reports)."""
    return int(session.scalar(select(func.count()).select_from(row_type)) or 0)


# Institutions -----------------------------------------------------------------------------------------


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


# Projects and memberships -----------------------------------------------------------------------------


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


# Users and tokens -------------------------------------------------------------------------------------


def create_user(session: Session, name: str, role: str = "user") -> UserRow:
    name = _check_name("user", name)
    _check_choice("role", role, USER_ROLES)
    return add_named(session, UserRow(name=name, role=role), UserRow.name, name, "user")


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


def bootstrap_admin(session: Session, name: str, now: datetime) -> tuple[UserRow, str]:
    """The first admin of a fresh database, with a non-expiring token: the way into an empty server
    (``gpuc admin bootstrap`` and ``gpuc up`` call it against the database directly). Refused once
    any admin exists, so it cannot be used to mint a second way in."""
    if session.scalar(select(UserRow.id).where(UserRow.role == "admin")) is not None:
        raise ConflictError("an admin already exists; ask them for a token (gpuc admin user token)")
    user = create_user(session, name, "admin")
    _, raw = create_token(session, user.id, now, None, "bootstrap")
    return user, raw
