"""Reservations in the service (design note 0016): the ``reservations`` table, whole nodes of one model
held for a project from a start for a duration, once or every ``every_s`` seconds (``occurrences``
times, or without end). A reservation is cancelled (``cancelled_at``), never deleted;
``last_end_at`` is when its last occurrence ends (NULL: without end), so the scheduler's snapshot reads
only the reservations still to come.

A new table only: nothing existing is copied.

Revision ID: 0019_reservations
Revises: 0018_graceful_preemption
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_reservations"
down_revision: str | None = "0018_graceful_preemption"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WITHIN = ("", "nvlink", "block")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("project_id", sa.Integer(), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("every_s", sa.Integer(), nullable=True),
        sa.Column("occurrences", sa.Integer(), nullable=True),
        sa.Column("within", sa.String(length=16), nullable=False),
        sa.Column("lend_idle", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_end_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("gpus >= 1", name=op.f("ck_reservations_gpus")),
        sa.CheckConstraint("end_at > start_at", name=op.f("ck_reservations_period")),
        sa.CheckConstraint("every_s IS NULL OR every_s > 0", name=op.f("ck_reservations_every")),
        sa.CheckConstraint(
            "occurrences IS NULL OR (occurrences >= 1 AND every_s IS NOT NULL)",
            name=op.f("ck_reservations_occurrences"),
        ),
        sa.CheckConstraint(_one_of("within", WITHIN), name=op.f("ck_reservations_within")),
    )
    op.create_index(op.f("ix_reservations_project_id"), "reservations", ["project_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_reservations_project_id"), table_name="reservations")
    op.drop_table("reservations")
