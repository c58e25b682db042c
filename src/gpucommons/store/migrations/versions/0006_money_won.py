"""Money in whole won: a program's list price and a usage segment's charge become ``BIGINT``.

Stored floats are rounded half-up to the won (the commons' rounding rule, ``metering/pricing.py``).
PostgreSQL changes the type in place (``USING floor(x + 0.5)``). SQLite cannot change a column's type,
and recreating ``programs`` in a batch copy would drop a table that proposals and awards reference,
which with foreign keys on deletes or refuses them; so on SQLite a whole-won column is added beside
the old one, filled, and takes its name once the old one is dropped (``ALTER TABLE ... DROP COLUMN``,
SQLite 3.35+). Downgrade turns the won back into floats the same way.

Revision ID: 0006_money_won
Revises: 0005_job_versions
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_money_won"
down_revision: str | None = "0005_job_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY_COLUMNS = (("programs", "price_krw_per_gpu_hour"), ("usage", "cost_krw"))


def _sqlite_floor_half_up(column: str) -> str:
    """``floor(column + 0.5)`` without SQLite's optional math functions: ``CAST`` truncates toward
    zero, so one is taken off where that landed above a negative value."""
    shifted = f"({column} + 0.5)"
    return f"CAST({shifted} AS INTEGER) - ({shifted} < CAST({shifted} AS INTEGER))"


def _sqlite_retype(table: str, column: str, sql_type: str, value: str) -> None:
    new = f"{column}__new"
    op.execute(f"ALTER TABLE {table} ADD COLUMN {new} {sql_type} NOT NULL DEFAULT 0")
    op.execute(f"UPDATE {table} SET {new} = {value}")
    op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    op.execute(f"ALTER TABLE {table} RENAME COLUMN {new} TO {column}")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, column in MONEY_COLUMNS:
        if sqlite:
            _sqlite_retype(table, column, "BIGINT", _sqlite_floor_half_up(column))
        else:
            op.alter_column(
                table,
                column,
                type_=sa.BigInteger(),
                existing_type=sa.Float(),
                existing_nullable=False,
                postgresql_using=f"floor({column} + 0.5)::bigint",
            )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for table, column in MONEY_COLUMNS:
        if sqlite:
            _sqlite_retype(table, column, "FLOAT", f"CAST({column} AS REAL)")
        else:
            op.alter_column(
                table,
                column,
                type_=sa.Float(),
                existing_type=sa.BigInteger(),
                existing_nullable=False,
                postgresql_using=f"{column}::double precision",
            )
