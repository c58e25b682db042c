"""Bearer-token authentication and the role checks every route uses.

A request carries ``Authorization: Bearer <token>``; the token's SHA-256 is looked up together with its
owner and the owner's project roles in one query, and a token never issued, revoked or past its expiry
(checked against the service clock) gets 401. Nothing is cached: a revocation or a changed role counts
from the next request in every server process. When the token was last used is written at most once
per ``LAST_USED_RESOLUTION_S``, in its own short transaction, so a busy client costs no write per request.

Authorisation is a handful of explicit ``require_*`` calls in the routes, so the whole policy can be read
here. What a refusal says depends on what the caller may already know:

- a caller who cannot see the object (an outsider to its project) gets ``NotFoundError`` (404) with the
  very message an id that does not exist gets, passed in as ``missing``, so the answer tells them
  nothing about which ids exist;
- a caller who can see it but lacks the role (a member where a PI is needed, a reviewer submitting a
  job) gets ``PermissionDeniedError`` (403) with the reason;
- admin-only routes refuse every non-admin with 403 before any lookup, whatever the id, which says
  nothing about the object either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, NoReturn

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gpucommons.errors import AuthError, NotFoundError, PermissionDeniedError
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.store.base import not_found
from gpucommons.store.jobs import PRIORITY_CLASSES
from gpucommons.store.tenancy import token_holder, touch_token

LAST_USED_RESOLUTION_S = 60.0
DEFAULT_PRIORITY_CLASS = "normal"
# Classes ranked above the default: they jump the line, so they are not for everyone.
PRIVILEGED_PRIORITY_CLASSES = PRIORITY_CLASSES[PRIORITY_CLASSES.index(DEFAULT_PRIORITY_CLASS) + 1 :]
# Project roles that may submit privileged jobs (a privileged class, or not preemptible) to their project.
PRIVILEGED_JOB_PROJECT_ROLES = ("pi",)

_bearer = HTTPBearer(auto_error=False, description="an API token from `gpuc token create`")


@dataclass(frozen=True)
class Principal:
    """Who is calling: global ``role`` (admin, reviewer, user), ``projects``: project id -> pi|member,
    and ``token_id``, the token the request carried."""

    user_id: int
    name: str
    role: str
    projects: Mapping[int, str] = field(default_factory=dict)
    token_id: int = 0

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

    def can_see_project(self, project_id: int) -> bool:
        """Whether the caller may know the project and its proposals and awards exist."""
        return self.is_staff or project_id in self.projects


def _record_use(request: Request, token_id: int, now: datetime) -> None:
    """Write ``last_used_at`` in a transaction of its own: the route's session may never commit (a
    read), and a failed route must not undo the record that the token was used."""
    with request.app.state.write_lock, request.app.state.sessions() as session:
        touch_token(session, token_id, now, LAST_USED_RESOLUTION_S)
        session.commit()


def current_principal(
    session: SessionDep,
    now: NowDep,
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The authenticated caller, or ``AuthError`` (401) saying why not."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthError("missing bearer token; send 'Authorization: Bearer <token>' (see gpuc login)")
    holder = token_holder(session, credentials.credentials)
    if holder is None:
        raise AuthError("unknown API token")
    if holder.revoked_at is not None:
        raise AuthError(f"API token {holder.token_id} was revoked at {holder.revoked_at.isoformat()}")
    if holder.expires_at is not None and holder.expires_at <= now:
        raise AuthError(f"API token expired at {holder.expires_at.isoformat()}")
    resolution = timedelta(seconds=LAST_USED_RESOLUTION_S)
    if holder.last_used_at is None or now - holder.last_used_at >= resolution:
        _record_use(request, holder.token_id, now)
    return Principal(holder.user_id, holder.name, holder.role, holder.projects, holder.token_id)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def _refuse(principal: Principal, project_id: int, reason: str, missing: NotFoundError | None) -> NoReturn:
    """403 with ``reason`` to a caller who may know the project exists; to anyone else the 404 that an
    absent object gets (``missing``; by default that of an absent project)."""
    if principal.can_see_project(project_id):
        raise PermissionDeniedError(reason)
    raise missing if missing is not None else not_found("project", project_id)


def require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise PermissionDeniedError(f"user {principal.name!r} is not an admin")


def require_staff(
    principal: Principal, project_id: int | None = None, missing: NotFoundError | None = None
) -> None:
    """Reviewers and admins. Given the project of the object acted on (a proposal's reviews), members
    of that project, who see the object, get 403, and anyone else ``missing`` (404)."""
    if principal.is_staff:
        return
    reason = f"user {principal.name!r} is neither a reviewer nor an admin"
    if project_id is None:
        raise PermissionDeniedError(reason)
    _refuse(principal, project_id, reason, missing)


def require_project_member(
    principal: Principal, project_id: int, missing: NotFoundError | None = None
) -> None:
    """Members and PIs of the project, and admins, may act on it; reviewers, who see every project,
    get 403, outsiders ``missing`` (404)."""
    if not principal.is_admin and project_id not in principal.projects:
        reason = f"user {principal.name!r} is not a member of project {project_id}"
        _refuse(principal, project_id, reason, missing)


def require_project_reader(
    principal: Principal, project_id: int, missing: NotFoundError | None = None
) -> None:
    """Members, PIs, reviewers and admins may read a project and its proposals and awards; to anyone
    else they do not exist (``missing``, 404)."""
    if not principal.can_see_project(project_id):
        raise missing if missing is not None else not_found("project", project_id)


def require_pi(principal: Principal, project_id: int, missing: NotFoundError | None = None) -> None:
    """Only the project's PIs (and admins) manage members and apply for awards; members and reviewers
    get 403, outsiders ``missing`` (404)."""
    if not principal.is_admin and principal.projects.get(project_id) != "pi":
        _refuse(
            principal, project_id, f"user {principal.name!r} is not a PI of project {project_id}", missing
        )


def require_job_reader(principal: Principal, project_id: int, missing: NotFoundError) -> None:
    """A project's jobs are seen and acted on by its members and admins only (reviewers judge
    proposals, not workloads); to anyone else they do not exist (``missing``, 404)."""
    if not principal.is_admin and project_id not in principal.projects:
        raise missing


def require_job_class(principal: Principal, project_id: int, priority_class: str, preemptible: bool) -> None:
    """A priority class above ``normal`` jumps the line and a non-preemptible job cannot be moved for
    others' guarantees, so only admins and the project's PIs may ask for them (members get 403).
    Unknown classes are left to the submission's own validation (422)."""
    privileged = priority_class in PRIVILEGED_PRIORITY_CLASSES or not preemptible
    if not privileged or principal.is_admin:
        return
    if principal.projects.get(project_id) in PRIVILEGED_JOB_PROJECT_ROLES:
        return
    asked = f"priority class {priority_class!r}" if priority_class in PRIVILEGED_PRIORITY_CLASSES else ""
    asked = " and ".join(a for a in (asked, "" if preemptible else "a non-preemptible job") if a)
    raise PermissionDeniedError(
        f"user {principal.name!r} may not submit {asked} to project {project_id}; "
        "only admins and the project's PIs may"
    )


def require_token_owner(principal: Principal, owner_id: int, token_id: int) -> None:
    """A token is managed by its owner and by admins; to anyone else it does not exist (404)."""
    if not principal.is_admin and owner_id != principal.user_id:
        raise not_found("token", token_id)


def admin_principal(principal: PrincipalDep) -> Principal:
    """Dependency form of ``require_admin`` for admin-only routes."""
    require_admin(principal)
    return principal


AdminDep = Annotated[Principal, Depends(admin_principal)]
