"""Graceful, checkpoint-aware preemption in the live service (design note 0016, "In the live service"):
on ``jobs``

- ``grace_s``: the job's own grace period between the stop signal and the kill (NULL: its priority
  class's default; either way capped by the server's ``max_grace_s``);
- ``checkpoint_interval_s``: how often it says it writes a checkpoint (NULL: not declared);
- ``last_checkpoint_at``: its last reported checkpoint (an API call, or the checkpoint file it touched);
- ``signalled_at``: when its last run was told to stop by a preemption;
- ``run_token_sha256``: the SHA-256 of its current run's secret (``GPUC_JOB_TOKEN``), with which the
  run reports its own checkpoints through the API (and no other job's).

Plain ``ADD COLUMN`` on both databases: a batch copy of ``jobs`` on SQLite would drop the rows that
cascade from it (see 0011 and 0012).

The scheduler's snapshot reads ``last_checkpoint_at`` (a running job's last checkpoint steers the choice
of victims), and a checkpoint is reported while nothing else of the row changes, so the change-stamp
triggers of 0014 watch it too: without a stamp the live engine's view would never see it. The other
columns are written with a change that stamps already (the insert, a preemption, a start).

Revision ID: 0018_graceful_preemption
Revises: 0017_job_events
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_graceful_preemption"
down_revision: str | None = "0017_job_events"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 0014's list, as it stands there, and with the checkpoint the snapshot now reads.
STAMPED_BEFORE = (
    "version",
    "state",
    "cancel_requested_at",
    "retry_at",
    "backend_ref",
    "started_at",
    "attained_gpu_s",
    "award_id",
    "borrowing",
    "restarts",
    "project_id",
)
STAMPED_COLUMNS = (*STAMPED_BEFORE, "last_checkpoint_at")
_SQLITE_STAMP = (
    "UPDATE jobs SET change_stamp = coalesce((SELECT max(change_stamp) FROM jobs), 0) + 1 WHERE id = NEW.id"
)


def _stamp_updates_of(columns: tuple[str, ...]) -> None:
    """Replace the trigger that stamps updates so it fires on ``columns`` (the insert trigger stays)."""
    watched = ", ".join(columns)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER jobs_change_stamp ON jobs")
        op.execute(
            f"CREATE TRIGGER jobs_change_stamp BEFORE INSERT OR UPDATE OF {watched} ON jobs "
            "FOR EACH ROW EXECUTE FUNCTION gpuc_stamp_job()"
        )
        return
    op.execute("DROP TRIGGER jobs_change_stamp_update")
    stamp = f"BEGIN {_SQLITE_STAMP}; END"
    op.execute(f"CREATE TRIGGER jobs_change_stamp_update AFTER UPDATE OF {watched} ON jobs {stamp}")


def upgrade() -> None:
    op.add_column("jobs", sa.Column("grace_s", sa.Float(), nullable=True))
    op.add_column("jobs", sa.Column("checkpoint_interval_s", sa.Float(), nullable=True))
    op.add_column("jobs", sa.Column("last_checkpoint_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("signalled_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("jobs", sa.Column("run_token_sha256", sa.String(length=64), nullable=True))
    _stamp_updates_of(STAMPED_COLUMNS)


def downgrade() -> None:
    _stamp_updates_of(STAMPED_BEFORE)  # before the column it names goes
    for column in (
        "run_token_sha256",
        "signalled_at",
        "last_checkpoint_at",
        "checkpoint_interval_s",
        "grace_s",
    ):
        op.drop_column("jobs", column)
