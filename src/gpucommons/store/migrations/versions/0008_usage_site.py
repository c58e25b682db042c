"""Each usage segment names the site it ran at (``usage.site``): reports group by site, and the end of
a run the scheduler already closed is metered at that site's PUE and carbon intensity
(``store/usage.extend_segment``), even when the segment it extends had no length yet. Rows written
before keep ``NULL``.

Revision ID: 0008_usage_site
Revises: 0007_usage_backend_ref
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_usage_site"
down_revision: str | None = "0007_usage_backend_ref"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("usage", sa.Column("site", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("usage", "site")
