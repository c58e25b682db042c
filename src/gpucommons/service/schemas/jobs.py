"""Request and response bodies for jobs: submit, read, events, why, logs and usage balances."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gpucommons.service.schemas.common import Gpus, In, Line, Name, Text

PriorityClass = Literal["low", "normal", "high"]  # store.jobs.PRIORITY_CLASSES
JobClass = Literal["llm-pretrain", "llm-finetune", "vision", "inference"]  # domain.speeds.JOB_CLASSES
MAX_ARGV = 4_096
MAX_ARG = 32_768
MAX_SCRIPT = 1_000_000


class JobCreate(In):
    """A submission. ``project`` is a project name or id; give ``command`` (argv) or ``script``.
    ``time_limit`` reads like ``90s``, ``30m``, ``1h``, ``2d`` or ``1:30:00``. Retrying with the same
    ``idempotency_key`` returns the job created the first time."""

    project: Name
    gpus: Gpus = 1
    command: list[Annotated[Text, Field(max_length=MAX_ARG)]] = Field(
        default_factory=list, max_length=MAX_ARGV
    )
    script: Text = Field(default="", max_length=MAX_SCRIPT)
    gpus_per_node: Gpus | None = None
    models: list[Annotated[Name, Field(max_length=64)]] = Field(
        default_factory=list, max_length=64, description="accepted accelerator models; empty: any"
    )
    time_limit: Line = Field(default="1h", max_length=32)
    priority_class: PriorityClass = "normal"
    preemptible: bool = True
    sovereign: bool = Field(default=False, description="run only on sovereign sites")
    name: Line = ""
    idempotency_key: Line | None = None
    workdir: Line = Field(default="", max_length=1000)
    job_class: JobClass | Literal[""] = Field(
        default="", description="its kind of work, for its speed on each model; empty: the default"
    )
    lineage: Line = Field(
        default="",
        max_length=200,
        description="the model lineage it trains, for the training-compute ledger; empty: none",
    )
    grace_period: Line = Field(
        default="",
        max_length=32,
        description="time between a preemption's stop signal and the kill, to checkpoint and exit (30s, "
        "2m); empty: its class's default (low 30 s, normal 60 s, high 120 s); at most the server's "
        "GPUC_MAX_GRACE_S",
    )
    checkpoint_interval: Line = Field(
        default="",
        max_length=32,
        description="how often it writes a checkpoint (30m), for the choice of victims; empty: not declared",
    )


class JobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    project_id: int
    project: str = ""
    user_id: int
    name: str
    command: list[str]
    gpus: int
    gpus_per_node: int | None
    accepted_models: list[str]
    time_limit_s: float
    priority_class: str
    preemptible: bool
    sovereign: bool
    job_class: str = Field(default="", description="its kind of work (empty: the speed table's default)")
    lineage: str = Field(default="", description="the model lineage it trains (empty: none)")
    grace_s: float | None = Field(
        default=None, description="its grace period when preempted (null: its class's default, capped)"
    )
    checkpoint_interval_s: float | None = Field(default=None, description="as declared (null: not declared)")
    last_checkpoint_at: datetime | None = Field(default=None, description="its last reported checkpoint")
    signalled_at: datetime | None = Field(default=None, description="when a preemption last told it to stop")
    idempotency_key: str | None
    state: str
    reason_code: str
    reason: str
    submitted_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    exit_code: int | None
    backend: str
    backend_ref: str
    restarts: int
    award_id: int | None
    cancel_requested_at: datetime | None
    array_id: int | None = Field(default=None, description="the job array it is a task of (its id)")
    array_task_id: int | None = Field(default=None, description="its index in that array")
    assigned_gpus: list[str] = Field(default_factory=list, description="node:gpu pairs while running")
    last_gpus: list[str] = Field(
        default_factory=list,
        description="node:gpu pairs of its last run, kept after it stops (empty: it never started)",
    )
    model: str = Field(default="", description="the accelerator model it runs on, while running")
    speed: float | None = Field(
        default=None,
        description="how fast it runs there against the reference model (1: as fast; design note 0009); "
        "null on a cluster without a speed table or while not running",
    )
    reference_model: str = Field(default="", description="the model speeds are measured against")


class JobEventRead(BaseModel):
    """One event of a job's history (design note 0017), oldest first in ``GET /jobs/{id}/events``."""

    model_config = ConfigDict(from_attributes=True)

    at: datetime
    kind: Literal[
        "submitted",
        "started",
        "preempted",
        "requeued",
        "lost",
        "launch_failed",
        "cancel_requested",
        "ended",
    ]  # store.job_events.EVENT_KINDS
    run: int = Field(description="the run it belongs to: 1, then one more after each preemption or requeue")
    gpus: list[str] | None = Field(default=None, description="node:gpu pairs, on a start")
    by_job_id: int | None = Field(default=None, description="the job a preemption made room for")
    detail: str = Field(default="", description="why, or how it ended (state: exit code or reason)")
    backend_ref: str | None = Field(default=None, description="the backend's name of the run, where known")


class CheckpointRead(BaseModel):
    """A job's last checkpoint as recorded after ``POST /jobs/{id}/checkpoint``."""

    job_id: int
    last_checkpoint_at: datetime | None


class WhyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    job_id: int
    state: str
    code: str
    detail: str
    position: int | None
    estimated_start_at: datetime | None
    unblock: str
    model: str = ""  # where it runs, while running
    speed: float | None = None  # against ``reference_model`` (null: no speed table, or not running)
    reference_model: str = ""


class LogChunk(BaseModel):
    """Log bytes from ``offset`` on (decoded as UTF-8); ask again from ``next_offset`` to follow."""

    job_id: int
    stream: str
    text: str
    next_offset: int
    state: str


class BalanceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    project: str
    award_id: int | None
    model: str
    unit: str = Field(default="device-hours", description="what the budget and gpu_hours_used count")
    gpu_hours_budget: float | None
    gpu_hours_used: float
    gpu_hours: float = Field(description="device-hours metered")
    cost_krw: int = Field(ge=0, description="whole won charged")
    energy_kwh: float
    co2_kg: float
    flops: float
