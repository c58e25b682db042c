"""``gpuc token``: create, list and revoke API tokens through the API. A new token is printed once (only
its hash is kept); a listing shows id, label, owner, created, expires, last used and state, never a
secret. Without ``--expires-days`` or ``--expires-at`` a token expires after the server's default."""

from __future__ import annotations

from typing import Annotated

import typer

from gpucommons.cli.common import console, make_client, parse_time, show
from gpucommons.errors import InvalidRequestError

app = typer.Typer(no_args_is_help=True, help="API tokens: create, list, revoke.")
COLUMNS = ("id", "label", "user", "created_at", "expires_at", "last_used_at", "state", "current")

UserOpt = Annotated[int | None, typer.Option(help="user id (admin); default: yourself")]
ExpiresDaysOpt = Annotated[
    int | None, typer.Option(min=1, help="days until it expires (default: the server's, 90)")
]
ExpiresAtOpt = Annotated[str | None, typer.Option(help="ISO 8601 expiry, instead of --expires-days")]
LabelOpt = Annotated[str, typer.Option(help="a note to recognise the token by")]


def issue(user: int | None, expires_days: int | None, expires_at: str | None, label: str) -> str:
    """Create a token and return it raw; shared by ``gpuc token create`` and ``gpuc admin user token``."""
    if expires_days is not None and expires_at is not None:
        raise InvalidRequestError("give --expires-days or --expires-at, not both")
    expiry = parse_time(expires_at, "--expires-at") if expires_at else None
    return make_client().create_token(user, expiry, label, expires_days).token


@app.command("create")
def create(
    user: UserOpt = None,
    expires_days: ExpiresDaysOpt = None,
    expires_at: ExpiresAtOpt = None,
    label: LabelOpt = "",
) -> None:
    """Issue an API token; it is printed once and only its hash is kept."""
    console.print(issue(user, expires_days, expires_at, label))


@app.command("list")
def list_tokens(
    user: Annotated[int | None, typer.Option(help="only this user's tokens (admins see everyone's)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Your tokens (an admin: everyone's): id, label, owner, created, expires, last used, state."""
    show(make_client().list_tokens(user), COLUMNS, as_json)


@app.command("revoke")
def revoke(token_id: Annotated[int, typer.Argument(help="token id (see gpuc token list)")]) -> None:
    """Revoke a token at once: every request carrying it is refused from now on."""
    row = make_client().revoke_token(token_id)
    console.print(f"token {row.id} ({row.label or 'no label'}, user {row.user}) revoked")
