"""One exception tree for the whole package.

    GpucError                      base; its message is one line a user can act on
    ├── ConfigError                a cluster file, preset or setting is invalid
    ├── TraceError                 a trace file is missing or has a malformed row
    ├── UnknownNameError           a policy, placer, preset or trace name is not registered
    ├── InvalidRequestError        a job or API request is malformed (negative GPUs, bad time limit...)  422
    ├── NotFoundError              a named object does not exist (or is not visible to the caller)       404
    ├── ConflictError              the request clashes with stored state (duplicate name, wrong status)  409
    ├── AuthError                  no, unknown or expired API token                                      401
    └── PermissionDeniedError      authenticated, but the role does not allow this action                403

The CLI maps every ``GpucError`` to a one-line message and exit code 2; the service maps them to the
HTTP status on the right (``ConfigError``, ``TraceError``, ``UnknownNameError``: 400) with a JSON body
``{"detail": "<message>"}``, and the client raises the same class again from that status.
Anything else reaching the top is a bug.
"""


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
