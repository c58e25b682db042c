"""Settings of the live commons (server, CLI, client), read from ``GPUC_*`` environment variables.

Built once in an entry point (``gpuc server``, ``create_app``, a test) and passed down; nothing in the
package builds settings at import time, so tests and embedded uses can point at their own home and
database without touching the environment.

    GPUC_HOME                  state directory (default ``~/.gpuc``): database, credentials, job logs
    GPUC_DATABASE_URL          SQLAlchemy URL (default ``sqlite:///<home>/gpuc.db``);
                               PostgreSQL as ``postgresql+psycopg://user:pw@host/db``
    GPUC_HOST / GPUC_PORT      where ``gpuc server`` listens (default 127.0.0.1:8080)
    GPUC_CLUSTER               preset name or TOML path of the inventory (default ``demo``)
    GPUC_SCHEDULER_INTERVAL_S  seconds between scheduling cycles of the live engine
    GPUC_BACKEND               execution backend: ``local`` (processes on this machine) or ``slurm``
    GPUC_SLURM_CONFIG          TOML file with the Slurm backend's settings (the keys of ``SlurmConfig``,
                               as ``gpuc site import-slurm --backend-config`` writes them); optional
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the live service needs to start; see the module docstring for the variables."""

    model_config = SettingsConfigDict(env_prefix="GPUC_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".gpuc")
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    cluster: str = "demo"
    scheduler_interval_s: float = Field(default=5.0, gt=0)
    backend: Literal["local", "slurm"] = "local"
    slurm_config: Path | None = None

    @model_validator(mode="after")
    def _defaults_under_home(self) -> Settings:
        """Expand ``~`` in the home and put the default SQLite database inside it."""
        self.home = self.home.expanduser()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'gpuc.db'}"
        return self

    @property
    def credentials_path(self) -> Path:
        """Where ``gpuc login`` and ``gpuc up`` store the server URL and token."""
        return self.home / "credentials.json"
