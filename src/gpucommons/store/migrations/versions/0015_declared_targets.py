"""Declared targets (design note 0014): the ``targets`` table, and notices of no project
(``notices.project_id`` nullable), which a missed target sends to the centre's staff.

On SQLite a column's nullability changes only in a batch copy of the table; ``notices`` is referenced
by no other table, so the copy is safe (unlike the tables 0006 and 0013 leave in place). Downgrade
removes the notices of no project before the column is NOT NULL again.

Revision ID: 0015_declared_targets
Revises: 0014_job_change_stamps
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_declared_targets"
down_revision: str | None = "0014_job_change_stamps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS = ("share", "gpu_hours", "wait")
GROUPINGS = ("project", "institution", "kind", "region", "program", "model")
EVERY = ("week", "month", "quarter", "year")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "targets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("group_by", sa.String(length=16), nullable=False),
        sa.Column("group_value", sa.String(length=200), nullable=False),
        sa.Column("program_id", sa.Integer(), sa.ForeignKey("programs.id"), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("percentile", sa.Integer(), nullable=True),
        sa.Column("every", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("name", name=op.f("uq_targets_name")),
        sa.CheckConstraint(_one_of("kind", KINDS), name=op.f("ck_targets_kind")),
        sa.CheckConstraint(_one_of("group_by", GROUPINGS), name=op.f("ck_targets_group_by")),
        sa.CheckConstraint(_one_of("every", EVERY), name=op.f("ck_targets_every")),
    )
    with op.batch_alter_table("notices") as batch:
        batch.alter_column("project_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM notices WHERE project_id IS NULL")
    with op.batch_alter_table("notices") as batch:
        batch.alter_column("project_id", existing_type=sa.Integer(), nullable=False)
    op.drop_table("targets")
