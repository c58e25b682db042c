"""Jobs marked sovereign at submission (kept on sovereign sites like every job of a sovereign project).

Plain ``ALTER TABLE`` on both databases, no batch copy: recreating ``jobs`` on SQLite would drop the old
table, and with foreign keys on that deletes the allocation and usage rows that cascade from it. The
server default ``'0'`` is false on both and fills the jobs already stored.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("sovereign", sa.Boolean(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("jobs", "sovereign")
