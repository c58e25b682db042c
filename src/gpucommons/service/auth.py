"""Bearer-token authentication and the role checks every route uses.

A request carries ``Authorization: Bearer <token>``; the token's SHA-256 is looked up, its expiry
checked against the service clock, and the caller becomes a ``Principal`` with their global role and
their role in each project. Authorisation is a handful of explicit ``require_*`` calls in the routes,
each raising ``PermissionDeniedError`` (403) with a reason, so the whole policy can be read here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gpucommons.errors import AuthError, PermissionDeniedError
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.store import repos

_bearer = HTTPBearer(auto_error=False, description="an API token from `gpuc admin user token`")


@dataclass(frozen=True)
class Principal:
    """Who is calling: global ``role`` (admin, reviewer, user) and ``projects``: project id -> pi|member."""

    user_id: int
    name: str
    role: str
    projects: Mapping[int, str] = field(default_factory=dict)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def is_staff(self) -> bool:
        """Admins and reviewers see every project's proposals and awards."""
        return self.role in ("admin", "reviewer")

    def visible_project_ids(self) -> set[int] | None:
        """Projects whose records the caller may read; ``None`` means all of them."""
        return None if self.is_staff else set(self.projects)


def current_principal(
    session: SessionDep,
    now: NowDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated caller, or ``AuthError`` (401) saying why not."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthError("missing bearer token; send 'Authorization: Bearer <token>' (see gpuc login)")
    token = repos.find_token(session, credentials.credentials)
    if token is None:
        raise AuthError("unknown API token")
    if token.expires_at is not None and token.expires_at <= now:
        raise AuthError(f"API token expired at {token.expires_at.isoformat()}")
    user = repos.get_user(session, token.user_id)
    return Principal(user.id, user.name, user.role, repos.project_roles(session, user.id))


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise PermissionDeniedError(f"user {principal.name!r} is not an admin")


def require_staff(principal: Principal) -> None:
    if not principal.is_staff:
        raise PermissionDeniedError(f"user {principal.name!r} is neither a reviewer nor an admin")


def require_project_member(principal: Principal, project_id: int) -> None:
    """Members and PIs of the project, and admins, may act on it."""
    if not principal.is_admin and project_id not in principal.projects:
        raise PermissionDeniedError(f"user {principal.name!r} is not a member of project {project_id}")


def require_project_reader(principal: Principal, project_id: int) -> None:
    """Members, PIs, reviewers and admins may read a project's proposals and awards."""
    if not principal.is_staff and project_id not in principal.projects:
        raise PermissionDeniedError(f"user {principal.name!r} is not a member of project {project_id}")


def require_pi(principal: Principal, project_id: int) -> None:
    """Only the project's PIs (and admins) manage members and apply for awards."""
    if not principal.is_admin and principal.projects.get(project_id) != "pi":
        raise PermissionDeniedError(f"user {principal.name!r} is not a PI of project {project_id}")


def admin_principal(principal: PrincipalDep) -> Principal:
    """Dependency form of ``require_admin`` for admin-only routes."""
    require_admin(principal)
    return principal


AdminDep = Annotated[Principal, Depends(admin_principal)]
