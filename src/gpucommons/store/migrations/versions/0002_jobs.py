"""Jobs, allocations, usage segments and the scheduler lease.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("command", sa.JSON(), nullable=False),
        sa.Column("workdir", sa.String(length=1000), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("gpus_per_node", sa.Integer(), nullable=True),
        sa.Column("accepted_models", sa.JSON(), nullable=False),
        sa.Column("time_limit_s", sa.Float(), nullable=False),
        sa.Column("priority_class", sa.String(length=16), nullable=False),
        sa.Column("preemptible", sa.Boolean(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason_code", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("estimated_start_at", _TS, nullable=True),
        sa.Column("submitted_at", _TS, nullable=False),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("backend_ref", sa.String(length=200), nullable=False),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.Column("borrowing", sa.Boolean(), nullable=False),
        sa.Column("attained_gpu_s", sa.Float(), nullable=False),
        sa.Column("cancel_requested_at", _TS, nullable=True),
        sa.Column("award_id", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            "state IN ('pending', 'running', 'finished', 'failed', 'cancelled', 'timeout', 'lost')",
            name=op.f("ck_jobs_state"),
        ),
        sa.CheckConstraint(
            "priority_class IN ('low', 'normal', 'high')", name=op.f("ck_jobs_priority_class")
        ),
        sa.CheckConstraint("gpus > 0", name=op.f("ck_jobs_gpus")),
        sa.CheckConstraint("time_limit_s > 0", name=op.f("ck_jobs_time_limit")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_jobs_project_id_projects")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_jobs_user_id_users")),
        sa.ForeignKeyConstraint(["award_id"], ["awards.id"], name=op.f("fk_jobs_award_id_awards")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.UniqueConstraint("project_id", "idempotency_key", name="uq_jobs_project_idempotency_key"),
    )
    op.create_index(op.f("ix_jobs_project_id"), "jobs", ["project_id"], unique=False)
    op.create_index(op.f("ix_jobs_award_id"), "jobs", ["award_id"], unique=False)
    op.create_index("ix_jobs_state_submitted", "jobs", ["state", "submitted_at", "id"], unique=False)
    op.create_table(
        "allocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("node_index", sa.Integer(), nullable=False),
        sa.Column("node_name", sa.String(length=200), nullable=False),
        sa.Column("gpu_index", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_allocations_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocations")),
        sa.UniqueConstraint("node_name", "gpu_index", name="uq_allocations_node_gpu"),
    )
    op.create_index(op.f("ix_allocations_job_id"), "allocations", ["job_id"], unique=False)
    op.create_table(
        "usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("award_id", sa.Integer(), nullable=True),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("ended_at", _TS, nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("gpu_hours", sa.Float(), nullable=False),
        sa.Column("energy_kwh", sa.Float(), nullable=False),
        sa.Column("cost_krw", sa.Float(), nullable=False),
        sa.Column("co2_kg", sa.Float(), nullable=False),
        sa.Column("flops", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_usage_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_usage_project_id_projects")),
        sa.ForeignKeyConstraint(["award_id"], ["awards.id"], name=op.f("fk_usage_award_id_awards")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage")),
    )
    op.create_index(op.f("ix_usage_job_id"), "usage", ["job_id"], unique=False)
    op.create_index(op.f("ix_usage_project_id"), "usage", ["project_id"], unique=False)
    op.create_index(op.f("ix_usage_award_id"), "usage", ["award_id"], unique=False)
    op.create_table(
        "scheduler_lease",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduler_lease")),
    )


def downgrade() -> None:
    op.drop_table("scheduler_lease")
    for index in ("ix_usage_award_id", "ix_usage_project_id", "ix_usage_job_id"):
        op.drop_index(op.f(index), table_name="usage")
    op.drop_table("usage")
    op.drop_index(op.f("ix_allocations_job_id"), table_name="allocations")
    op.drop_table("allocations")
    op.drop_index("ix_jobs_state_submitted", table_name="jobs")
    op.drop_index(op.f("ix_jobs_award_id"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_project_id"), table_name="jobs")
    op.drop_table("jobs")
