"""Map the package's error tree to HTTP, and document it.

Every ``GpucError`` becomes ``{"detail": "<one line>"}`` with the status ``gpucommons.errors.status_for``
gives it and the class's name in the ``Gpuc-Error`` header, so the client can raise the same class (the
table in ``gpucommons.errors`` is the only one; server and client both read it). Request-validation
failures become one line too (422, ``InvalidRequestError``), so the CLI can print the server's own
words; an error nobody foresaw is a 500 with a one-line body, never a traceback.

``error_responses(...)`` is what each route hands FastAPI as ``responses=``: the error statuses it can
return, each with the ``ErrorRead`` body, so the OpenAPI document lists exactly what a client may see.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from gpucommons.errors import (
    ERROR_HEADER,
    GpucError,
    InvalidRequestError,
    error_class,
    listed_class,
    status_for,
)
from gpucommons.service.schemas.common import ErrorRead

ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "configuration or backend trouble (ConfigError, UnknownNameError, TraceError, GpucError)",
    401: "no, unknown or expired API token (AuthError)",
    403: "the caller's role does not allow this (PermissionDeniedError)",
    404: "no such object, or not one the caller may see (NotFoundError)",
    409: "clashes with what is stored: a duplicate, or the object's status forbids it (ConflictError)",
    422: "malformed or out-of-bounds input (InvalidRequestError)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that can fail with ``statuses``, each with the ``ErrorRead`` body."""
    return {status: {"model": ErrorRead, "description": ERROR_DESCRIPTIONS[status]} for status in statuses}


def _error(status: int, detail: str, error: type[GpucError]) -> JSONResponse:
    headers = {ERROR_HEADER: error.__name__}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


async def _gpuc_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GpucError)
    return _error(status_for(exc), _one_line(str(exc)), listed_class(exc))


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "invalid request"


def _location(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "request"


# Pydantic's bound errors, said the way the rest of the service says them ("must be at least 1, got 0").
_BOUNDS = {
    "greater_than_equal": ("ge", "at least"),
    "greater_than": ("gt", "more than"),
    "less_than_equal": ("le", "at most"),
    "less_than": ("lt", "less than"),
}


def _message(error: dict[str, Any]) -> str:
    where = _location(tuple(error.get("loc", ())))
    bound = _BOUNDS.get(str(error.get("type")))
    ctx = error.get("ctx") or {}
    if bound is not None and bound[0] in ctx:
        return f"{where}: must be {bound[1]} {ctx[bound[0]]}, got {str(error.get('input'))[:40]}"
    return f"{where}: {str(error.get('msg', 'invalid')).removeprefix('Value error, ')}"


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = "; ".join(_message(e) for e in exc.errors())
    return _error(422, _one_line(detail), InvalidRequestError)


HTTP_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path, found by asking each route whether it would take
    the request with that method. Starlette's own ``Allow`` names only the first route that matched the
    path, although GET and POST of one path are separate routes here."""
    routes = request.app.router.routes
    return [
        method
        for method in HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's and FastAPI's own refusals (no route, wrong method, an unreadable body) in the same
    shape as the rest. A body FastAPI cannot even decode (not UTF-8) is malformed input: 422."""
    assert isinstance(exc, HTTPException)
    if exc.status_code == 400:
        return _error(422, f"request body: {exc.detail}", InvalidRequestError)
    response = _error(exc.status_code, _one_line(str(exc.detail)), error_class(exc.status_code))
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(_allowed_methods(request))
    return response


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    """A bug: Starlette re-raises it after this answer, so the server logs its traceback; the caller
    gets one line."""
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GpucError, _gpuc_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
