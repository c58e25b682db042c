"""Job arrays (design note 0011): the table ``job_arrays`` (one row per array: its id is the job id of
its first task; project, spec as written, task count and index range, concurrency limit or NULL), and
on ``jobs`` the array a task belongs to and its index (``array_id``, ``array_task_id``; NULL for a
plain job), unique together and indexed with ``state`` for the per-state counts of ``gpuc queue``.

The columns are added in a batch that never copies ``jobs`` (``recreate="never"``): on SQLite a copy
would drop the table, and with foreign keys on that deletes the allocation and usage rows that
cascade from it (see 0003). Uniqueness is a unique index, which both databases create in place.

Revision ID: 0012_job_arrays
Revises: 0011_reference_hours
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_job_arrays"
down_revision: str | None = "0011_reference_hours"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "job_arrays",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("spec", sa.String(length=200), nullable=False),
        sa.Column("task_count", sa.Integer(), nullable=False),
        sa.Column("task_min", sa.Integer(), nullable=False),
        sa.Column("task_max", sa.Integer(), nullable=False),
        sa.Column("max_running", sa.Integer(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("task_count > 0", name=op.f("ck_job_arrays_task_count")),
        sa.CheckConstraint("max_running IS NULL OR max_running > 0", name=op.f("ck_job_arrays_max_running")),
        sa.ForeignKeyConstraint(["id"], ["jobs.id"], name=op.f("fk_job_arrays_id_jobs")),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_job_arrays_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_arrays")),
    )
    op.create_index(op.f("ix_job_arrays_project_id"), "job_arrays", ["project_id"])
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.add_column(sa.Column("array_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("array_task_id", sa.Integer(), nullable=True))
    op.create_index("uq_jobs_array_task", "jobs", ["array_id", "array_task_id"], unique=True)
    op.create_index("ix_jobs_array_state", "jobs", ["array_id", "state"])


def downgrade() -> None:
    op.drop_index("ix_jobs_array_state", table_name="jobs")
    op.drop_index("uq_jobs_array_task", table_name="jobs")
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.drop_column("array_task_id")
        batch.drop_column("array_id")
    op.drop_index(op.f("ix_job_arrays_project_id"), table_name="job_arrays")
    op.drop_table("job_arrays")
