"""Bearer-token authentication and the role checks every route uses.

A request carries ``Authorization: Bearer <token>``; the token's SHA-256 is looked up, its expiry
checked against the service clock, and the caller becomes a ``Principal`` with their global role and
their role in each project. Tokens and users' global roles never change once written, so what a token
names is cached for ``TOKEN_CACHE_TTL_S`` (a miss is one joined query); expiry is still checked against
the clock on every request, and project roles, which do change, are read every time.

Authorisation is a handful of explicit ``require_*`` calls in the routes, each raising
``PermissionDeniedError`` (403) with a reason, so the whole policy can be read here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from gpucommons.errors import AuthError, PermissionDeniedError
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.store import repos
from gpucommons.store.models import ApiTokenRow, UserRow

TOKEN_CACHE_TTL_S = 30.0
TOKEN_CACHE_MAX_ENTRIES = 10_000

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


@dataclass(frozen=True)
class _TokenOwner:
    user_id: int
    name: str
    role: str
    expires_at: datetime | None
    cached_at_s: float


class TokenCache:
    """Token SHA-256 -> its owner, for a short while, so a busy client costs one query per request
    instead of three. Unknown tokens are never cached (a token created a moment later must work)."""

    def __init__(self, ttl_s: float = TOKEN_CACHE_TTL_S, max_entries: int = TOKEN_CACHE_MAX_ENTRIES) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._owners: dict[str, _TokenOwner] = {}
        self._lock = threading.Lock()

    def owner(self, session: Session, raw: str) -> _TokenOwner | None:
        digest = repos.hash_token(raw)
        now_s = time.monotonic()
        with self._lock:
            hit = self._owners.get(digest)
        if hit is not None and now_s - hit.cached_at_s < self.ttl_s:
            return hit
        found = session.execute(
            select(UserRow.id, UserRow.name, UserRow.role, ApiTokenRow.expires_at)
            .join(UserRow, UserRow.id == ApiTokenRow.user_id)
            .where(ApiTokenRow.token_sha256 == digest)
        ).first()
        if found is None:
            return None
        owner = _TokenOwner(found[0], found[1], found[2], found[3], now_s)
        with self._lock:
            if len(self._owners) >= self.max_entries:
                self._owners.clear()
            self._owners[digest] = owner
        return owner


def _token_cache(request: Request) -> TokenCache:
    cache: TokenCache | None = getattr(request.app.state, "token_cache", None)
    if cache is None:
        cache = request.app.state.token_cache = TokenCache()
    return cache


def current_principal(
    session: SessionDep,
    now: NowDep,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated caller, or ``AuthError`` (401) saying why not."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthError("missing bearer token; send 'Authorization: Bearer <token>' (see gpuc login)")
    owner = _token_cache(request).owner(session, credentials.credentials)
    if owner is None:
        raise AuthError("unknown API token")
    if owner.expires_at is not None and owner.expires_at <= now:
        raise AuthError(f"API token expired at {owner.expires_at.isoformat()}")
    return Principal(owner.user_id, owner.name, owner.role, repos.project_roles(session, owner.user_id))


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
