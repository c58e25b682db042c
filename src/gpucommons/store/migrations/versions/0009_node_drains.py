"""Nodes an operator took out of service (``node_drains``): a drained node gets no new job, and what runs
there runs on (design note 0008). One row per drained node; resuming it deletes the row.

Revision ID: 0009_node_drains
Revises: 0008_usage_site
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_node_drains"
down_revision: str | None = "0008_usage_site"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "node_drains",
        sa.Column("node_name", sa.String(length=200), primary_key=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("drained_by", sa.Integer(), sa.ForeignKey("users.id"), nullable=True),
        sa.Column("drained_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("node_drains")
