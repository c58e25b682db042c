"""Request and response bodies for job arrays (design note 0011)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from gpucommons.domain.arrays import MAX_SPEC_CHARS
from gpucommons.service.schemas.common import Line
from gpucommons.service.schemas.jobs import JobCreate, WhyRead


class ArrayCreate(JobCreate):
    """A job array: the fields of one job, run once per index of ``array``. ``array`` is Slurm's
    spec: ``0-999``, ``1,3,5-7`` or ``0-15:4``, with an optional ``%N``, the most tasks running at
    once. A spec that is malformed, runs backwards, has a step or limit of 0, or more tasks than the
    server's maximum (``GPUC_MAX_ARRAY_TASKS``) is refused with 422, storing nothing. Retrying with the
    same ``idempotency_key`` returns the array created the first time."""

    array: Line = Field(min_length=1, max_length=MAX_SPEC_CHARS, examples=["0-999%50"])


class ArrayRead(BaseModel):
    """A job array: its id (the job id of its first task), what each task runs (``name``, ``gpus``,
    as its first task), how many tasks are in each state, and the reason its next pending task waits."""

    id: int
    project_id: int
    project: str
    user_id: int
    name: str
    gpus: int
    spec: str = Field(description="as submitted, e.g. 0-999%50")
    task_count: int
    task_min: int
    task_max: int
    max_running: int | None = Field(description="the most tasks running at once; null: no limit")
    submitted_at: datetime
    states: dict[str, int] = Field(description="tasks per state (states with none left out)")
    reason_code: str = Field(default="", description="why its next pending task waits (empty: none)")
    reason: str = ""


class ArrayWhyRead(BaseModel):
    """Why an array waits: its counts, and the wait of its next pending task (``null``: none pends)."""

    array_id: int
    states: dict[str, int]
    max_running: int | None
    next_task: int | None = Field(description="the index of its next pending task")
    why: WhyRead | None
