"""Map the package's error tree to HTTP: every ``GpucError`` becomes ``{"detail": "<one line>"}`` with
the status below, and request-validation failures become one line too, so the CLI can print the
server's own words."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gpucommons.errors import (
    AuthError,
    ConflictError,
    GpucError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
)

STATUS_BY_ERROR: tuple[tuple[type[GpucError], int], ...] = (
    (AuthError, 401),
    (PermissionDeniedError, 403),
    (NotFoundError, 404),
    (ConflictError, 409),
    (InvalidRequestError, 422),
)
DEFAULT_STATUS = 400  # ConfigError, TraceError, UnknownNameError


def status_for(exc: GpucError) -> int:
    for error_type, status in STATUS_BY_ERROR:
        if isinstance(exc, error_type):
            return status
    return DEFAULT_STATUS


async def _gpuc_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GpucError)
    status = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)


def _location(loc: tuple[object, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "request"


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    messages = [f"{_location(tuple(e.get('loc', ())))}: {e.get('msg', 'invalid')}" for e in exc.errors()]
    return JSONResponse({"detail": "; ".join(messages) or "invalid request"}, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GpucError, _gpuc_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
