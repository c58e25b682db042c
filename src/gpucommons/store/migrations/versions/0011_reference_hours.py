"""Exchange rates under one quota in the live service (design note 0009): a program and its awards
state their budget's unit (``unit``: ``device-hours``, as every award so far, or ``reference-hours``),
a job names its class (``job_class``; empty: the speed table's default class), and each usage segment
keeps the rate it was charged at (``rate``: budget hours per device-hour), so a later revision of the
speed table never recharges a past segment.

Plain ``ADD COLUMN`` on both databases: a batch copy of ``programs`` on SQLite would drop a table that
proposals and awards reference (see 0006). SQLite takes the unit's check in the column definition,
and drops it with the column.

Revision ID: 0011_reference_hours
Revises: 0010_usage_ended_at_index
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_reference_hours"
down_revision: str | None = "0010_usage_ended_at_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNITS = "unit IN ('device-hours', 'reference-hours')"
UNIT_TABLES = ("programs", "awards")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table in UNIT_TABLES:
        if sqlite:
            op.execute(
                f"ALTER TABLE {table} ADD COLUMN unit VARCHAR(16) NOT NULL DEFAULT 'device-hours' "
                f"CONSTRAINT ck_{table}_budget_unit CHECK ({UNITS})"
            )
        else:
            op.add_column(
                table, sa.Column("unit", sa.String(length=16), nullable=False, server_default="device-hours")
            )
            op.create_check_constraint(op.f(f"ck_{table}_budget_unit"), table, sa.text(UNITS))
    op.add_column("jobs", sa.Column("job_class", sa.String(length=32), nullable=False, server_default=""))
    op.add_column("usage", sa.Column("rate", sa.Float(), nullable=False, server_default="1.0"))


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.drop_column("usage", "rate")
    op.drop_column("jobs", "job_class")
    for table in UNIT_TABLES:
        if not sqlite:
            op.drop_constraint(op.f(f"ck_{table}_budget_unit"), table, type_="check")
        op.drop_column(table, "unit")
