"""Request and response bodies of reservations (design note 0016, "Reservations in the service")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from annotated_types import Interval
from pydantic import Field

from gpucommons.service.schemas.common import Gpus, In, Name, Out, Timestamp

MAX_RESERVATION_S = 366 * 86_400  # an occurrence, or the time between two: a year at most
MAX_OCCURRENCES = 10_000
Within = Literal["", "nvlink", "block"]
ReservationState = Literal["scheduled", "active", "ended", "cancelled"]


class ReservationCreate(In):
    project: Name = Field(description="the project's name (or id) the GPUs are held for")
    model: Name = Field(description="the accelerator model, e.g. H200")
    gpus: Gpus = Field(description="whole nodes of the model, in GPUs")
    start_at: Timestamp = Field(description="when the first occurrence starts; not in the past")
    duration_s: Annotated[int, Interval(ge=1, le=MAX_RESERVATION_S)] = Field(
        description="how long each occurrence lasts, in seconds"
    )
    every_s: Annotated[int, Interval(ge=3_600, le=MAX_RESERVATION_S)] | None = Field(
        default=None, description="repeat every this many seconds (null: once); at least an occurrence"
    )
    occurrences: Annotated[int, Interval(ge=1, le=MAX_OCCURRENCES)] | None = Field(
        default=None, description="how many times it repeats (null with every_s: without end)"
    )
    within: Within = Field(
        default="", description="nvlink: inside one NVLink domain; block: one network block; empty: anywhere"
    )
    lend_idle: bool = Field(
        default=False, description="short preemptible jobs of others may use reserved GPUs left idle"
    )


class ReservationRead(Out):
    id: int
    project_id: int
    project: str
    model: str
    gpus: int
    start_at: datetime = Field(description="the first occurrence's start")
    end_at: datetime = Field(description="the first occurrence's end")
    every_s: int | None
    occurrences: int | None
    within: str
    lend_idle: bool
    created_by: int
    created_at: datetime
    cancelled_at: datetime | None
    last_end_at: datetime | None = Field(description="when its last occurrence ends; null: without end")
    state: ReservationState
    next_start_at: datetime | None = Field(description="the occurrence in force or next; null: none left")
    next_end_at: datetime | None
