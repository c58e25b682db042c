"""One exception tree for the whole package.

    GpucError                      base; its message is one line a user can act on
    ├── ConfigError                a cluster file, preset or setting is invalid
    ├── TraceError                 a trace file is missing or has a malformed row
    ├── UnknownNameError           a policy, placer, preset or trace name is not registered
    └── InvalidRequestError        a job or API request is malformed (negative GPUs, bad time limit...)

The CLI maps every ``GpucError`` to a one-line message and exit code 2; the service maps them to 4xx.
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
