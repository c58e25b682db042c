"""Users and API tokens. Admins create users and can issue a token for anyone (the first login of a
new user); every user can issue tokens for themselves. Raw tokens appear once, in the response; a token
expires when asked, else after the server's default (see ``routes/tokens.py``, which lists and revokes).
A user sets their own e-mail address, where notices go (an admin sets anyone's)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gpucommons.errors import PermissionDeniedError
from gpucommons.service.auth import AdminDep, PrincipalDep
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.errors import error_responses
from gpucommons.service.routes.tokens import token_expiry
from gpucommons.service.schemas.common import Id
from gpucommons.service.schemas.tenancy import (
    TokenCreate,
    TokenCreated,
    UserCreate,
    UserRead,
    UserUpdate,
    WhoAmI,
)
from gpucommons.store import tenancy

router = APIRouter(prefix="/users", tags=["tenancy"])


@router.post("", status_code=201, responses=error_responses(401, 403, 409, 422))
def create_user(body: UserCreate, _admin: AdminDep, session: SessionDep) -> UserRead:
    row = tenancy.create_user(session, body.name, body.role, body.email)
    session.commit()
    return UserRead.model_validate(row)


@router.get("", responses=error_responses(401, 403))
def list_users(_admin: AdminDep, session: SessionDep) -> list[UserRead]:
    return [UserRead.model_validate(r) for r in tenancy.list_users(session)]


@router.patch("/{user_id:int}", responses=error_responses(401, 403, 404, 422))
def update_user(user_id: Id, body: UserUpdate, principal: PrincipalDep, session: SessionDep) -> UserRead:
    """Set where a user's notices are mailed: an admin for anyone, a user for themselves."""
    if not principal.is_admin and principal.user_id != user_id:
        raise PermissionDeniedError("only an admin may change another user")
    row = tenancy.set_user_email(session, user_id, body.email)
    session.commit()
    return UserRead.model_validate(row)


@router.get("/me", responses=error_responses(401))
def whoami(principal: PrincipalDep) -> WhoAmI:
    return WhoAmI(
        id=principal.user_id, name=principal.name, role=principal.role, projects=dict(principal.projects)
    )


def _issue(
    session: SessionDep, user_id: int, body: TokenCreate, now: NowDep, request: Request
) -> TokenCreated:
    expires_at = token_expiry(body, now, request)
    row, raw = tenancy.create_token(session, user_id, now, expires_at, body.label)
    session.commit()
    return TokenCreated(
        id=row.id, user_id=row.user_id, token=raw, expires_at=row.expires_at, created_at=row.created_at
    )


@router.post("/me/tokens", status_code=201, responses=error_responses(401, 422))
def create_own_token(
    body: TokenCreate, principal: PrincipalDep, session: SessionDep, now: NowDep, request: Request
) -> TokenCreated:
    return _issue(session, principal.user_id, body, now, request)


@router.post("/{user_id:int}/tokens", status_code=201, responses=error_responses(401, 403, 404, 422))
def create_token_for(
    user_id: Id, body: TokenCreate, _admin: AdminDep, session: SessionDep, now: NowDep, request: Request
) -> TokenCreated:
    return _issue(session, user_id, body, now, request)
