"""Request and response bodies for nodes and their drains (design note 0008)."""

from __future__ import annotations

from datetime import datetime

from gpucommons.service.schemas.common import In, Name, Out


class NodeDrain(In):
    reason: Name  # why it is out of service: shown in ``gpuc node list`` until it is resumed


class NodeRead(Out):
    name: str
    pool: str
    model: str
    site: str
    gpus: int
    gpus_allocated: int  # held by running jobs
    drained: bool
    drain_reason: str
    drained_by: str
    drained_at: datetime | None
