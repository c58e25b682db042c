"""Reading a user's input file (cluster, tenants, scenario) with the one-line errors the CLI prints."""

from __future__ import annotations

from pathlib import Path

from gpucommons.errors import ConfigError


def read_text(path: Path, what: str) -> str:
    """The file's text; a missing, unreadable or non-UTF-8 file is a ``ConfigError`` naming ``what``
    (e.g. "cluster file") and the path."""
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
