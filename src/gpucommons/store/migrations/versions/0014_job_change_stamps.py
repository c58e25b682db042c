"""Change stamps on jobs (design note 0013): ``jobs.change_stamp``, indexed, set by a trigger on every
insert and on every update of a column the scheduler's snapshot reads, so the live engine re-reads only
the jobs that changed since its last cycle (``store/job_view.py``). On SQLite the stamp is one more than
the largest stamp (writers take turns, so stamps grow in commit order); on PostgreSQL it is the writing
transaction's id, read against the oldest transaction still in progress. Existing rows get a stamp of 0:
the engine's first read after a start reads every active job anyway.

Also ``ix_jobs_cancel_requested``, partial: every scheduler step asks for the running jobs asked to
cancel, a handful among thousands.

Revision ID: 0014_job_change_stamps
Revises: 0013_award_lifecycle
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_job_change_stamps"
down_revision: str | None = "0013_award_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The columns of ``jobs`` a snapshot reads that a write may change (``store/job_view.py``); the request's
# own columns (GPUs, models, time limit, class...) are written once, at submission. Reasons are advisory
# and written by the scheduler itself: they stamp nothing.
STAMPED_COLUMNS = (
    "version",
    "state",
    "cancel_requested_at",
    "retry_at",
    "backend_ref",
    "started_at",
    "attained_gpu_s",
    "award_id",
    "borrowing",
    "restarts",
    "project_id",
)

# ``max`` alone in its subquery, so SQLite reads it from the end of the index instead of scanning.
CANCEL_ASKED = "state = 'running' AND cancel_requested_at IS NOT NULL"
_SQLITE_STAMP = (
    "UPDATE jobs SET change_stamp = coalesce((SELECT max(change_stamp) FROM jobs), 0) + 1 WHERE id = NEW.id"
)


def upgrade() -> None:
    # A batch that never copies the table: a plain ADD COLUMN on both databases (see 0006 and 0013).
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.add_column(sa.Column("change_stamp", sa.BigInteger(), nullable=True))
    op.execute("UPDATE jobs SET change_stamp = 0")
    op.create_index("ix_jobs_change_stamp", "jobs", ["change_stamp"])
    asked = sa.text(CANCEL_ASKED)
    op.create_index("ix_jobs_cancel_requested", "jobs", ["id"], sqlite_where=asked, postgresql_where=asked)
    columns = ", ".join(STAMPED_COLUMNS)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION gpuc_stamp_job() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN NEW.change_stamp := pg_current_xact_id()::text::bigint; RETURN NEW; END $$"
        )
        op.execute(
            f"CREATE TRIGGER jobs_change_stamp BEFORE INSERT OR UPDATE OF {columns} ON jobs "
            "FOR EACH ROW EXECUTE FUNCTION gpuc_stamp_job()"
        )
        return
    stamp = f"BEGIN {_SQLITE_STAMP}; END"
    op.execute(f"CREATE TRIGGER jobs_change_stamp_insert AFTER INSERT ON jobs {stamp}")
    op.execute(f"CREATE TRIGGER jobs_change_stamp_update AFTER UPDATE OF {columns} ON jobs {stamp}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER jobs_change_stamp ON jobs")
        op.execute("DROP FUNCTION gpuc_stamp_job()")
    else:
        op.execute("DROP TRIGGER jobs_change_stamp_insert")
        op.execute("DROP TRIGGER jobs_change_stamp_update")
    op.drop_index("ix_jobs_cancel_requested", table_name="jobs")
    op.drop_index("ix_jobs_change_stamp", table_name="jobs")
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.drop_column("change_stamp")
