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
    GPUC_JOB_UIDS              uids the local backend runs jobs as when the server runs as root, one per
                               running job: ``FIRST-LAST`` (default ``60600-61099``; no account may own them)
    GPUC_PRIORITY_CLASSES      the priority of each job class and which classes may displace lower ones:
                               ``name=priority[:preempts],...`` over ``low``, ``normal``, ``high``
                               (default ``low=0,normal=100,high=1000:preempts``; ``policy/priority.py``)
    GPUC_TOKEN_EXPIRY_DAYS     days an API token issued through the API lives when the request names
                               no expiry (default 90; 0: such tokens never expire)
    GPUC_RECLAIM_MIN_RUN_S     under ``quota``, how long a borrowing job runs before a guaranteed job
                               may take its GPUs back (default 0: at once)
    GPUC_POLICY                the live scheduler's policy (``gpuc up``/``gpuc scheduler``; default
                               ``quota``)
    GPUC_MAX_ARRAY_TASKS       the most tasks one job array may have (default 100,000; design note 0011)
    GPUC_MAX_GRACE_S           the longest grace period a preempted job gets between its stop signal and
                               the kill, whatever it or its class asks (default 600; a submission asking
                               more is refused; design note 0016)

The award lifecycle and its notices (design note 0012):

    GPUC_LIFECYCLE_INTERVAL_S  seconds between lifecycle steps of the server (expiry, reclaim, re-offer,
                               notices; default 3600)
    GPUC_NOTICE_INTERVAL_S     seconds between the sender's looks for unsent notices (default 30)
    GPUC_NOTICE_EXPIRY_DAYS    days before an award's end that its "expires soon" notice goes out
                               (default 14)
    GPUC_NOTICE_MAX_ATTEMPTS   deliveries tried per notice before it is left unsent (default 8)
    GPUC_NOTICE_SENDER         how notices are sent: ``none`` (kept in the outbox, default), ``smtp`` or
                               ``webhook``
    GPUC_SMTP_HOST / GPUC_SMTP_PORT   the mail server (default localhost:25)
    GPUC_SMTP_FROM             the sender address (default ``gpucommons@localhost``)
    GPUC_SMTP_STARTTLS         upgrade the connection with STARTTLS before logging in (default false)
    GPUC_SMTP_USER / GPUC_SMTP_PASSWORD   log in with these when a user is set
    GPUC_WEBHOOK_URL           where the webhook sender POSTs each notice as JSON
    GPUC_WEBHOOK_SECRET        if set, each POST carries ``X-Gpuc-Signature: sha256=<HMAC of the body>``
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from gpucommons.policy.priority import PriorityClasses

DEFAULT_POLICY = "quota"  # the live scheduler's policy unless GPUC_POLICY or --policy names another


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
    priority_classes: str = "low=0,normal=100,high=1000:preempts"
    token_expiry_days: int = Field(default=90, ge=0, le=36_500)
    reclaim_min_run_s: float = Field(default=0.0, ge=0, le=31_536_000, allow_inf_nan=False)
    job_uids: str = Field(default="60600-61099", pattern=r"^[1-9][0-9]*-[1-9][0-9]*$")
    max_array_tasks: int = Field(default=100_000, ge=1, le=10_000_000)
    max_grace_s: float = Field(default=600.0, ge=0, le=86_400, allow_inf_nan=False)
    lifecycle_interval_s: float = Field(default=3600.0, gt=0, le=31_536_000, allow_inf_nan=False)
    notice_interval_s: float = Field(default=30.0, gt=0, le=86_400, allow_inf_nan=False)
    notice_expiry_days: int = Field(default=14, ge=1, le=3650)
    notice_max_attempts: int = Field(default=8, ge=1, le=100)
    notice_sender: Literal["none", "smtp", "webhook"] = "none"
    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = "gpucommons@localhost"
    smtp_starttls: bool = False
    smtp_user: str = ""
    smtp_password: SecretStr = SecretStr("")
    webhook_url: str = ""
    webhook_secret: SecretStr = SecretStr("")

    @field_validator("job_uids")
    @classmethod
    def _uid_range_in_order(cls, value: str) -> str:
        """Refuse a reversed or too large range before ``gpuc up`` touches anything."""
        first, last = (int(v) for v in value.split("-"))
        if not first <= last <= 2**32 - 2:
            raise ValueError(f"{value}: need FIRST <= LAST <= 4294967294")
        return value

    @field_validator("priority_classes")
    @classmethod
    def _priority_table_parses(cls, value: str) -> str:
        """Refuse a malformed class table at start, with the parser's one-line reason."""
        from gpucommons.policy.priority import CLASS_NAMES, PriorityClasses

        try:
            PriorityClasses.parse(value, known=CLASS_NAMES)
        except Exception as exc:  # InvalidRequestError; pydantic reports a ValueError as one line
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _webhook_has_a_url(self) -> Settings:
        """A webhook sender without a URL would fail every delivery: refuse it at start instead."""
        if self.notice_sender == "webhook" and not self.webhook_url.startswith(("http://", "https://")):
            raise ValueError("GPUC_NOTICE_SENDER=webhook needs GPUC_WEBHOOK_URL, an http(s) URL")
        return self

    @model_validator(mode="after")
    def _defaults_under_home(self) -> Settings:
        """Expand ``~`` in the home and put the default SQLite database inside it."""
        self.home = self.home.expanduser()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'gpuc.db'}"
        return self

    @property
    def priority_table(self) -> PriorityClasses:
        from gpucommons.policy.priority import CLASS_NAMES, PriorityClasses

        return PriorityClasses.parse(self.priority_classes, known=CLASS_NAMES)

    @property
    def credentials_path(self) -> Path:
        """Where ``gpuc login`` and ``gpuc up`` store the server URL and token."""
        return self.home / "credentials.json"
