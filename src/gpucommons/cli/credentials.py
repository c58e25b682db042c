"""Where the CLI finds the server and its token.

``GPUC_HOME/credentials.json`` (written by ``gpuc login`` and by ``gpuc up``, mode 0600)::

    {"url": "http://127.0.0.1:8080", "token": "gpuc_...", "user": "alice"}

``user`` is informational. ``GPUC_URL`` and ``GPUC_TOKEN`` in the environment win over the file, key
by key, so a script can point one command elsewhere without logging in.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from gpucommons.errors import ConfigError

FILE_NAME = "credentials.json"
DEFAULT_URL = "http://127.0.0.1:8080"


@dataclass(frozen=True)
class Credentials:
    url: str
    token: str
    user: str = ""


def credentials_path(home: Path) -> Path:
    return home / FILE_NAME


def load_credentials(home: Path) -> Credentials | None:
    """The stored credentials, ``None`` if there are none; a damaged file is a ``ConfigError``."""
    path = credentials_path(home)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        return Credentials(url=str(data["url"]), token=str(data["token"]), user=str(data.get("user", "")))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a credentials file ({exc}); run gpuc login again") from exc


def save_credentials(home: Path, credentials: Credentials) -> Path:
    """Write the file readable by its owner only (it holds a bearer token)."""
    home.mkdir(parents=True, exist_ok=True)
    path = credentials_path(home)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(credentials), handle, indent=2)
    tmp.replace(path)
    return path


def resolve_credentials(home: Path, environ: dict[str, str] | None = None) -> Credentials:
    """Environment first (``GPUC_URL``, ``GPUC_TOKEN``), then the stored file, then the default URL
    with no token (the server will answer 401 with a hint)."""
    env = dict(os.environ) if environ is None else environ
    stored = load_credentials(home)
    url = env.get("GPUC_URL") or (stored.url if stored else DEFAULT_URL)
    token = env.get("GPUC_TOKEN") or (stored.token if stored else "")
    return Credentials(url=url, token=token, user=stored.user if stored else "")
