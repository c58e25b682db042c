"""Request and response bodies for jobs: submit, read, why, logs and usage balances."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class JobCreate(BaseModel):
    """A submission. ``project`` is a project name or id; give ``command`` (argv) or ``script``.
    ``time_limit`` reads like ``90s``, ``30m``, ``1h``, ``2d`` or ``1:30:00``. Retrying with the same
    ``idempotency_key`` returns the job created the first time."""

    model_config = ConfigDict(extra="forbid")

    project: str = Field(min_length=1)
    gpus: int = 1
    command: list[str] = Field(default_factory=list)
    script: str = ""
    gpus_per_node: int | None = None
    models: list[str] = Field(default_factory=list, description="accepted accelerator models; empty: any")
    time_limit: str = "1h"
    priority_class: str = "normal"
    preemptible: bool = True
    sovereign: bool = Field(default=False, description="run only on sovereign sites")
    name: str = Field(default="", max_length=200)
    idempotency_key: str | None = Field(default=None, max_length=200)
    workdir: str = Field(default="", max_length=1000)


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
    assigned_gpus: list[str] = Field(default_factory=list, description="node:gpu pairs while running")


class WhyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    job_id: int
    state: str
    code: str
    detail: str
    position: int | None
    estimated_start_at: datetime | None
    unblock: str


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
    gpu_hours_budget: float | None
    gpu_hours_used: float
    gpu_hours: float
    cost_krw: float
    energy_kwh: float
    co2_kg: float
    flops: float
