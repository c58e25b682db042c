"""API tokens: list and revoke. Everyone lists and revokes their own tokens, admins anyone's; a token of
someone else is, to a non-admin, a token that does not exist. Tokens are issued under ``/users``
(``POST /users/me/tokens``, ``POST /users/{id}/tokens``) with the expiry ``token_expiry`` works out."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Request

from gpucommons.config import Settings
from gpucommons.errors import InvalidRequestError
from gpucommons.service.auth import PrincipalDep, require_token_owner
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.errors import error_responses
from gpucommons.service.schemas.common import Id
from gpucommons.service.schemas.tenancy import TokenCreate, TokenRead
from gpucommons.store import tenancy
from gpucommons.store.tenancy import ApiTokenRow

router = APIRouter(prefix="/tokens", tags=["tenancy"])


def token_expiry(body: TokenCreate, now: datetime, request: Request) -> datetime | None:
    """When a token issued through the API expires: as asked, else after the server's default
    ``token_expiry_days`` (none when that is 0). A forgotten token then stops working on its own."""
    if body.expires_at is not None and body.expires_days is not None:
        raise InvalidRequestError("give expires_at or expires_days, not both")
    if body.expires_at is not None:
        return body.expires_at
    settings: Settings = request.app.state.settings
    days = body.expires_days if body.expires_days is not None else settings.token_expiry_days
    return now + timedelta(days=days) if days else None


def _read(row: ApiTokenRow, owner: str, now: datetime, current_id: int) -> TokenRead:
    return TokenRead(
        id=row.id,
        label=row.label,
        user_id=row.user_id,
        user=owner,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        state=tenancy.token_state(row, now),
        current=row.id == current_id,
    )


@router.get("", responses=error_responses(401, 422))
def list_tokens(
    principal: PrincipalDep, session: SessionDep, now: NowDep, user_id: Id | None = None
) -> list[TokenRead]:
    """The caller's tokens; for an admin every user's (or ``user_id``'s). A non-admin asking for
    another user's tokens gets an empty list, as for a user without tokens."""
    if not principal.is_admin:
        if user_id is not None and user_id != principal.user_id:
            return []
        user_id = principal.user_id
    rows = tenancy.list_tokens(session, user_id)
    return [_read(row, owner, now, principal.token_id) for row, owner in rows]


@router.delete("/{token_id}", responses=error_responses(401, 404, 422))
def revoke_token(token_id: Id, principal: PrincipalDep, session: SessionDep, now: NowDep) -> TokenRead:
    """Revoke a token: every request carrying it gets 401 from now on. Revoking it again changes
    nothing and answers the same."""
    row = tenancy.get_token(session, token_id)
    require_token_owner(principal, row.user_id, token_id)
    row = tenancy.revoke_token(session, token_id, now)
    session.commit()
    owner = tenancy.get_user(session, row.user_id)
    return _read(row, owner.name, now, principal.token_id)
