"""Each usage segment names the backend run it meters (``usage.backend_ref``), so the end of a run the
scheduler already closed (a preemption takes effect when the process exits) can be charged to the
segment it belongs to (``store/usage.extend_segment``).

Revision ID: 0007_usage_backend_ref
Revises: 0006_money_won
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_usage_backend_ref"
down_revision: str | None = "0006_money_won"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("usage", sa.Column("backend_ref", sa.String(length=200), nullable=True))
    op.create_index("ix_usage_job_backend_ref", "usage", ["job_id", "backend_ref"])


def downgrade() -> None:
    op.drop_index("ix_usage_job_backend_ref", table_name="usage")
    op.drop_column("usage", "backend_ref")
