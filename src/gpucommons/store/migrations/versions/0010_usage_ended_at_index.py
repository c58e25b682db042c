"""Usage rows by when they ended (``ix_usage_ended_at``): a usage report sums the segments that ended in
its period (``store/reports.py``), so that filter reads an index, not the whole table.

Revision ID: 0010_usage_ended_at_index
Revises: 0009_node_drains
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010_usage_ended_at_index"
down_revision: str | None = "0009_node_drains"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_usage_ended_at", "usage", ["ended_at"])


def downgrade() -> None:
    op.drop_index("ix_usage_ended_at", table_name="usage")
