"""Signing in and out, who is viewing, and the forms' defences (design note 0015).

Sign in posts an API token once. It is checked by ``auth.current_principal``, the very function that
checks a bearer token, and kept in an HttpOnly, SameSite=Strict cookie; every page checks it again the
same way, so a revoked or expired token ends the session at the next click.

A form is accepted only with the session's CSRF token (the SHA-256 of a fixed label and the session's
API token: unguessable without the cookie, and the same in every server process) and, when the
browser names the page's origin, only from this host. Forms are read here, URL-encoded and at most
``MAX_FORM_BYTES``, so the dashboard needs no form-parsing dependency.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated
from urllib.parse import parse_qsl, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials

from gpucommons.errors import AuthError, InvalidRequestError, PermissionDeniedError
from gpucommons.service.auth import Principal, current_principal
from gpucommons.service.deps import NowDep, SessionDep
from gpucommons.service.ui.rendering import (
    SESSION_COOKIE,
    SignInRequired,
    base_path,
    home_path,
    render,
    see_other,
)

router = APIRouter()
CSRF_FIELD = "csrf"
MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 20
_CSRF_LABEL = b"gpucommons dashboard form\x00"


def csrf_token(api_token: str) -> str:
    """The token every form of a session carries."""
    return hashlib.sha256(_CSRF_LABEL + api_token.encode()).hexdigest()


def _principal(request: Request, session: SessionDep, now: NowDep, token: str) -> Principal:
    credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
    return current_principal(session, now, request, credentials)


def viewer(request: Request, session: SessionDep, now: NowDep) -> Principal:
    """The signed-in viewer, or ``SignInRequired`` (the browser is sent to the sign-in page)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired()
    try:
        return _principal(request, session, now, token)
    except AuthError as refused:
        raise SignInRequired(str(refused)) from refused


def session_csrf(request: Request) -> str:
    """The CSRF token of the signed-in session ("" without one)."""
    token = request.cookies.get(SESSION_COOKIE)
    return csrf_token(token) if token else ""


ViewerDep = Annotated[Principal, Depends(viewer)]
CsrfDep = Annotated[str, Depends(session_csrf)]


def _same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise PermissionDeniedError(f"a form sent from {origin!r} is not accepted here")


async def read_form(request: Request) -> dict[str, str]:
    """The fields of a URL-encoded form posted from this host (the last value of a repeated field)."""
    _same_origin(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise InvalidRequestError("a form must be sent as application/x-www-form-urlencoded")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise InvalidRequestError(f"a form may hold at most {MAX_FORM_BYTES} bytes")
    try:
        fields = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as bad:
        raise InvalidRequestError(f"unreadable form: {bad}") from bad
    return dict(fields)


FormDep = Annotated[dict[str, str], Depends(read_form)]


def checked_form(request: Request, fields: FormDep) -> dict[str, str]:
    """A form of the signed-in session: its CSRF token must be the session's (else 403)."""
    token = request.cookies.get(SESSION_COOKIE, "")
    sent = fields.get(CSRF_FIELD, "")
    if not token or not hmac.compare_digest(sent.encode(), csrf_token(token).encode()):
        raise PermissionDeniedError("this form is out of date or was not sent from the dashboard; reload it")
    return fields


CheckedFormDep = Annotated[dict[str, str], Depends(checked_form)]


@router.get("/")
def landing(request: Request, who: ViewerDep) -> Response:
    return see_other(request, home_path(who))


@router.get("/signin")
def sign_in_page(request: Request) -> Response:
    return render(request, "signin.html", {"error": ""})


@router.post("/signin")
def sign_in(request: Request, fields: FormDep, session: SessionDep, now: NowDep) -> Response:
    token = fields.get("token", "").strip()
    if not token:
        return render(request, "signin.html", {"error": "paste an API token"}, status_code=401)
    try:
        who = _principal(request, session, now, token)
    except AuthError as refused:
        return render(request, "signin.html", {"error": str(refused)}, status_code=401)
    response = see_other(request, home_path(who))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path=base_path(request) or "/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/signout")
def sign_out(request: Request, _fields: CheckedFormDep) -> Response:
    response = see_other(request, "/signin")
    response.delete_cookie(SESSION_COOKIE, path=base_path(request) or "/")
    return response
