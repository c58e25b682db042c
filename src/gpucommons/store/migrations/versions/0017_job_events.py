"""Job history (design note 0017): the ``job_events`` table, one row per thing that happened to a job
(submitted, started on which GPUs, preempted by which job and why, requeued, lost, a failed launch, a
cancel request, its end), with the run it belongs to (``restarts + 1`` then) and, for a start, the
``node:gpu`` names it held, which outlive the allocation rows deleted when the job stops.

A new table only: ``jobs`` is not copied, so nothing cascading from it is touched (see 0012).
Indexed by job and time. ``by_job_id`` (the job a preemption made room for) is a plain number, no
foreign key: a history records what the scheduler said, and no check of it may refuse a cycle.

Revision ID: 0017_job_events
Revises: 0016_job_lineage
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_job_events"
down_revision: str | None = "0016_job_lineage"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = (
    "submitted",
    "started",
    "preempted",
    "requeued",
    "lost",
    "launch_failed",
    "cancel_requested",
    "ended",
)


def _kind_check(kinds: tuple[str, ...]) -> str:
    return f"kind IN ({', '.join(repr(k) for k in kinds)})"


def upgrade() -> None:
    op.create_table(
        "job_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("gpus", sa.JSON(), nullable=True),
        sa.Column("by_job_id", sa.Integer(), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("backend_ref", sa.String(length=200), nullable=True),
        sa.CheckConstraint(_kind_check(KINDS), name=op.f("ck_job_events_kind")),
        sa.CheckConstraint("run > 0", name=op.f("ck_job_events_run")),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_events_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_events")),
    )
    op.create_index("ix_job_events_job_at", "job_events", ["job_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_job_events_job_at", table_name="job_events")
    op.drop_table("job_events")
