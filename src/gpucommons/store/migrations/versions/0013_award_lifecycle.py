"""Award lifecycle automation (design note 0012): each program's reclaim rule (``reclaim_table``, NULL
for the default table, ``reclaim_period_days``, ``reclaim_warning_days``), the last period an award's
rule was evaluated (``awards.reclaim_checked_period``), what a reclaim took from a budget and for which
period (``reclaims.reclaimed_gpu_hours``, ``reclaims.period``), users' e-mail addresses, and the outbox
of notices (``notices``). Programs that exist at the upgrade get an empty table (no automatic
reclaim), so the upgrade itself takes nothing back.

The columns are added in batches that never copy a table (``recreate="never"``): on SQLite a copy of
``programs``, ``awards`` or ``users`` would drop a table others reference (see 0006), and plain
``ADD COLUMN`` / ``DROP COLUMN`` (SQLite 3.35+) is all these columns need, having no constraint.

Revision ID: 0013_award_lifecycle
Revises: 0012_job_arrays
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0013_award_lifecycle"
down_revision: str | None = "0012_job_arrays"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = (
    "award_offered",
    "award_started",
    "award_expiring",
    "award_expired",
    "reclaim_warning",
    "reclaim_done",
    "budget_used",
    "target_missed",
)


def _columns() -> dict[str, tuple[sa.Column[Any], ...]]:
    """The new columns per table, built afresh for each run (a column belongs to one table object)."""
    return {
        "programs": (
            sa.Column("reclaim_table", sa.JSON(), nullable=True),
            sa.Column("reclaim_period_days", sa.Integer(), nullable=False, server_default="30"),
            sa.Column("reclaim_warning_days", sa.Integer(), nullable=False, server_default="7"),
        ),
        "awards": (sa.Column("reclaim_checked_period", sa.Integer(), nullable=False, server_default="0"),),
        "reclaims": (
            sa.Column("reclaimed_gpu_hours", sa.Float(), nullable=False, server_default="0"),
            sa.Column("period", sa.Integer(), nullable=True),
        ),
        "users": (sa.Column("email", sa.String(length=320), nullable=True),),
    }


def upgrade() -> None:
    for table, columns in _columns().items():
        with op.batch_alter_table(table, recreate="never") as batch:
            for column in columns:
                batch.add_column(column)
    # Programs that exist already keep what they had: no automatic reclaim (an empty table) until an
    # operator sets their rule; programs created from now on get the documented default (NULL).
    op.execute("UPDATE programs SET reclaim_table = '[]'")
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("award_id", sa.Integer(), sa.ForeignKey("awards.id"), nullable=True),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.UniqueConstraint("key", name=op.f("uq_notices_key")),
        sa.CheckConstraint(f"kind IN ({', '.join(repr(k) for k in KINDS)})", name=op.f("ck_notices_kind")),
    )
    op.create_index(op.f("ix_notices_project_id"), "notices", ["project_id"])
    op.create_index(op.f("ix_notices_award_id"), "notices", ["award_id"])
    op.create_index("ix_notices_unsent", "notices", ["sent_at", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("notices")
    for table, columns in _columns().items():
        with op.batch_alter_table(table, recreate="never") as batch:
            for column in reversed(columns):
                batch.drop_column(column.name)
