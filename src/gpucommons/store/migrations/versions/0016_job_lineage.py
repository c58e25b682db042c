"""The training-compute ledger per model lineage: ``jobs.lineage`` (the model lineage a job trains,
named at submit; empty: none), and the notice kind ``compute_threshold`` (a project's or lineage's
training FLOPs crossed 50 %, 80 % or 100 % of the AI Basic Act's 10^26 FLOPs), and an index on
``jobs.ended_at`` for the reports' waits, which select the jobs that ended in a period.

``lineage`` is a plain ``ADD COLUMN`` (a batch copy of ``jobs`` on SQLite would drop the rows that
cascade from it, see 0012). The notice kinds' check changes in a batch copy of ``notices``, which no
table references (as in 0015). Downgrade removes the compute notices before the narrower check.

Revision ID: 0016_job_lineage
Revises: 0015_declared_targets
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_job_lineage"
down_revision: str | None = "0015_declared_targets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KINDS_BEFORE = (
    "award_offered",
    "award_started",
    "award_expiring",
    "award_expired",
    "reclaim_warning",
    "reclaim_done",
    "budget_used",
    "target_missed",
)
KINDS = (*KINDS_BEFORE, "compute_threshold")


def _kind_check(kinds: tuple[str, ...]) -> str:
    return f"kind IN ({', '.join(repr(k) for k in kinds)})"


def _replace_kind_check(kinds: tuple[str, ...]) -> None:
    with op.batch_alter_table("notices") as batch:
        batch.drop_constraint(op.f("ck_notices_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_notices_kind"), sa.text(_kind_check(kinds)))


def upgrade() -> None:
    op.add_column("jobs", sa.Column("lineage", sa.String(length=200), nullable=False, server_default=""))
    op.create_index("ix_jobs_ended_at", "jobs", ["ended_at"])
    _replace_kind_check(KINDS)


def downgrade() -> None:
    op.execute("DELETE FROM notices WHERE kind = 'compute_threshold'")
    _replace_kind_check(KINDS_BEFORE)
    op.drop_index("ix_jobs_ended_at", table_name="jobs")
    op.drop_column("jobs", "lineage")
