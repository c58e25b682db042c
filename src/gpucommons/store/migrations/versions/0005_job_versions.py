"""Job rows carry a version and their launch retries; the scheduler lease carries a fencing epoch.

``jobs.version`` is the counter every write bumps (the API and the scheduler update a job only where
the version or state they read still holds); ``jobs.launch_attempts`` and ``jobs.retry_at`` record
failed launches and when the job may be tried again; ``scheduler_lease.epoch`` is bumped at every
takeover and checked in the same transaction as each scheduler write. Plain ``ALTER TABLE`` on both
databases (no batch copy, which on SQLite would drop ``jobs`` and cascade to its allocations and
usage); the server defaults fill the rows already stored. A job that was asked to cancel while it ran
and was sent back to the queue before the cancel reached it (the request used to be forgotten at its
next start) is cancelled now, as it was asked to be.

Revision ID: 0005_job_versions
Revises: 0004_tokens
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_job_versions"
down_revision: str | None = "0004_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("launch_attempts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("jobs", sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    op.add_column("scheduler_lease", sa.Column("epoch", sa.Integer(), nullable=False, server_default="0"))
    jobs = sa.table(
        "jobs",
        sa.column("state", sa.String()),
        sa.column("cancel_requested_at", sa.DateTime(timezone=True)),
        sa.column("ended_at", sa.DateTime(timezone=True)),
        sa.column("reason_code", sa.String()),
        sa.column("reason", sa.String()),
    )
    op.execute(
        jobs.update()
        .where(jobs.c.state == "pending", jobs.c.cancel_requested_at.is_not(None))
        .values(
            state="cancelled",
            ended_at=jobs.c.cancel_requested_at,
            reason_code="cancelled",
            reason="cancelled while pending",
        )
    )


def downgrade() -> None:
    op.drop_column("scheduler_lease", "epoch")
    op.drop_column("jobs", "version")
    op.drop_column("jobs", "retry_at")
    op.drop_column("jobs", "launch_attempts")
