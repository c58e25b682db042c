"""Rendering the dashboard's pages: the Jinja2 templates, the headers every page carries, the
navigation each role gets, and the error pages.

Every page is sent with a Content-Security-Policy that allows only the package's own stylesheet and
script (no inline script or style, no other origin), cannot be framed, is never cached (it shows one
viewer's data) and tells no other site where a link came from (the dashboard's own POSTs keep their
Origin, which the forms' check reads).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException

from gpucommons.errors import GpucError, status_for
from gpucommons.service.auth import Principal

PACKAGE_DIR = Path(__file__).resolve().parent
STATIC_DIR = PACKAGE_DIR / "static"
TEMPLATES = Jinja2Templates(directory=PACKAGE_DIR / "templates")

SESSION_COOKIE = "gpuc_ui_token"  # the signed-in viewer's API token (HttpOnly, SameSite=Strict)
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SignInRequired(Exception):
    """No sign-in cookie, or one whose token the service no longer accepts (``reason`` says why)."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


def base_path(request: Request) -> str:
    """Where the dashboard is mounted (``/ui``, behind any proxy prefix), for links and cookies."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def navigation(viewer: Principal) -> list[tuple[str, str]]:
    """(label, path) of the pages worth linking for this viewer. Only links: each page applies the
    API's rules itself, so a page left out here is also refused when asked for."""
    items = [("Jobs", "/jobs")] if viewer.is_admin or viewer.projects else []
    items += [("Usage", "/usage"), ("Programs", "/programs")]
    if viewer.is_admin:
        items.append(("Admin", "/admin"))
    return items


def home_path(viewer: Principal) -> str:
    """The page a viewer lands on after signing in."""
    if viewer.is_admin:
        return "/admin"
    if viewer.is_staff:
        return "/programs"
    return "/jobs"


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    viewer: Principal | None = None,
    csrf: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    """``template`` with ``context``, the mount path (``base``) and, for a signed-in ``viewer``, the
    navigation and the CSRF token forms must carry."""
    full = {
        "base": base_path(request),
        "viewer": viewer,
        "nav": navigation(viewer) if viewer is not None else [],
        "csrf": csrf,
        "active": request.url.path.removeprefix(base_path(request)),
        **context,
    }
    return TEMPLATES.TemplateResponse(request, template, full, status_code=status_code, headers=PAGE_HEADERS)


def see_other(request: Request, path: str) -> RedirectResponse:
    """303 to a dashboard page: after a form, the browser asks for the page with GET."""
    return RedirectResponse(base_path(request) + path, status_code=303, headers=PAGE_HEADERS)


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at is not None else "—"


def _number(value: float | int | None, digits: int = 1) -> str:
    return f"{value:,.{digits}f}" if value is not None else "—"


TEMPLATES.env.filters["when"] = _when
TEMPLATES.env.filters["number"] = _number


def _error_page(request: Request, status_code: int, message: str) -> Response:
    return render(request, "error.html", {"status": status_code, "message": message}, status_code=status_code)


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    response = see_other(request, "/signin")
    if exc.reason:  # the cookie's token was refused: forget it
        response.delete_cookie(SESSION_COOKIE, path=base_path(request) or "/")
    return response


async def _gpuc_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GpucError)
    return _error_page(request, status_for(exc), " ".join(str(exc).split()))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    said = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
    return _error_page(request, 422, said or "invalid request")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error_page(request, exc.status_code, str(exc.detail))


def install_page_errors(ui: FastAPI) -> None:
    """Refusals as pages: the status and one-line message the API would give, in HTML."""
    ui.add_exception_handler(SignInRequired, _sign_in_required)
    ui.add_exception_handler(GpucError, _gpuc_error)
    ui.add_exception_handler(RequestValidationError, _validation_error)
    ui.add_exception_handler(HTTPException, _http_error)
