"""One exception tree for the whole package, and the one table that maps it to HTTP.

    GpucError                  base; its message is one line a user can act on                    400
    ├── ConfigError            a cluster file, preset or setting is invalid                       400
    ├── TraceError             a trace file is missing or has a malformed row                     400
    ├── UnknownNameError       a policy, placer, preset or trace name is not registered           400
    ├── InvalidRequestError    a request is malformed or out of bounds (negative GPUs, a NUL)     422
    ├── NotFoundError          a named object does not exist (or the caller may not see it)       404
    ├── ConflictError          it clashes with stored state (duplicate name, wrong status)        409
    ├── AuthError              no, unknown or expired API token                                   401
    └── PermissionDeniedError  authenticated, but the role does not allow this action             403

The CLI maps every ``GpucError`` to a one-line message and exit code 2. The service answers each with
the status on the right (``status_for``), a JSON body ``{"detail": "<message>"}`` and the class's name
in the ``Gpuc-Error`` header; the client raises the same class again (``error_class``). Server and
client read ``ERROR_STATUS`` below and nothing else, so they cannot drift apart: three classes share
400, and the header is what tells them apart. Anything else reaching the top is a bug.
"""

from __future__ import annotations

from collections.abc import Mapping


class GpucError(Exception):
    """Base of all errors a user can cause; ``str(err)`` is a complete one-line explanation."""


class ConfigError(GpucError):
    """A cluster description, preset or setting is invalid."""


class TraceError(GpucError):
    """A trace file cannot be read: missing, or a row is malformed."""


class UnknownNameError(GpucError):
    """A name (policy, placer, preset, trace) is not registered; the message lists the known ones."""


class InvalidRequestError(GpucError):
    """A job or API request is malformed."""


class NotFoundError(GpucError):
    """A project, program, proposal, award, user or token named in a request does not exist."""


class ConflictError(GpucError):
    """The request is well formed but clashes with what is stored: a duplicate name, or an action the
    object's current status does not allow (reviewing an awarded proposal, activating an expired award)."""


class AuthError(GpucError):
    """The caller could not be identified: no bearer token, an unknown token, or an expired one."""


class PermissionDeniedError(GpucError):
    """The caller is known but their global or project role does not allow the action."""


# The one error-to-status table of the service and the client. A subclass defined elsewhere (e.g. the
# Slurm client's error) gets the status of its nearest ancestor listed here.
ERROR_STATUS: Mapping[type[GpucError], int] = {
    GpucError: 400,
    ConfigError: 400,
    TraceError: 400,
    UnknownNameError: 400,
    InvalidRequestError: 422,
    NotFoundError: 404,
    ConflictError: 409,
    AuthError: 401,
    PermissionDeniedError: 403,
}
ERROR_HEADER = "Gpuc-Error"  # response header naming the error's class, e.g. ``Gpuc-Error: ConfigError``
_BY_NAME: Mapping[str, type[GpucError]] = {cls.__name__: cls for cls in ERROR_STATUS}


def status_for(error: GpucError | type[GpucError]) -> int:
    """The HTTP status of an error (or error class): that of its nearest class in ``ERROR_STATUS``."""
    cls = error if isinstance(error, type) else type(error)
    return next(ERROR_STATUS[c] for c in cls.__mro__ if c in ERROR_STATUS)


def listed_class(error: GpucError | type[GpucError]) -> type[GpucError]:
    """The nearest class of ``error`` that ``ERROR_STATUS`` lists: what the header names."""
    cls = error if isinstance(error, type) else type(error)
    return next(c for c in cls.__mro__ if c in ERROR_STATUS)


def error_class(status: int, name: str | None = None) -> type[GpucError]:
    """The class a client raises for an error response: the one the ``Gpuc-Error`` header names when it
    is listed with that status; else the only class listed with the status; else ``GpucError``."""
    named = _BY_NAME.get(name or "")
    if named is not None and ERROR_STATUS[named] == status:
        return named
    listed = [cls for cls, code in ERROR_STATUS.items() if code == status]
    return listed[0] if len(listed) == 1 else GpucError
