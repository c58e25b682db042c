"""Tenancy and allocation tables: institutions, projects, users, memberships, API tokens, programs,
proposals, reviews, awards and reclaims.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "institutions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("region", sa.String(length=16), nullable=False),
        sa.Column("youth_startup", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('university', 'research_institute', 'sme', 'startup', 'consortium', "
            "'public_agency', 'enterprise')",
            name=op.f("ck_institutions_kind"),
        ),
        sa.CheckConstraint("region IN ('capital', 'non_capital')", name=op.f("ck_institutions_region")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_institutions")),
        sa.UniqueConstraint("name", name=op.f("uq_institutions_name")),
    )
    op.create_table(
        "programs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("capacity_gpus", sa.Integer(), nullable=False),
        sa.Column("unit_gpus", sa.Integer(), nullable=False),
        sa.Column("cap_per_org_gpus", sa.Integer(), nullable=True),
        sa.Column("non_capital_bonus", sa.Float(), nullable=False),
        sa.Column("duration_days", sa.Integer(), nullable=False),
        sa.Column("price_krw_per_gpu_hour", sa.Float(), nullable=False),
        sa.Column("discounts", sa.JSON(), nullable=False),
        sa.Column("youth_startup_extra_discount", sa.Float(), nullable=False),
        sa.Column("reclaim_below_utilization", sa.Float(), nullable=True),
        sa.Column("reclaim_after_days", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_programs_status")),
        sa.CheckConstraint("capacity_gpus >= 0", name=op.f("ck_programs_capacity")),
        sa.CheckConstraint("unit_gpus > 0", name=op.f("ck_programs_unit")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programs")),
        sa.UniqueConstraint("name", name=op.f("uq_programs_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('admin', 'reviewer', 'user')", name=op.f("ck_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("name", name=op.f("uq_users_name")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_api_tokens_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_api_tokens_token_sha256")),
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"], unique=False)
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("institution_id", sa.Integer(), nullable=False),
        sa.Column("sovereign", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["institution_id"], ["institutions.id"], name=op.f("fk_projects_institution_id_institutions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )
    op.create_index(op.f("ix_projects_institution_id"), "projects", ["institution_id"], unique=False)
    op.create_table(
        "memberships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.CheckConstraint("role IN ('pi', 'member')", name=op.f("ck_memberships_role")),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_memberships_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_memberships_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
        sa.UniqueConstraint("user_id", "project_id", name="uq_memberships_user_project"),
    )
    op.create_index(op.f("ix_memberships_project_id"), "memberships", ["project_id"], unique=False)
    op.create_index(op.f("ix_memberships_user_id"), "memberships", ["user_id"], unique=False)
    op.create_table(
        "proposals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("submitted_by", sa.Integer(), nullable=False),
        sa.Column("requested_gpus", sa.Integer(), nullable=False),
        sa.Column("justification", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('submitted', 'awarded', 'rejected')", name=op.f("ck_proposals_status")
        ),
        sa.CheckConstraint("requested_gpus > 0", name=op.f("ck_proposals_requested")),
        sa.ForeignKeyConstraint(
            ["program_id"], ["programs.id"], name=op.f("fk_proposals_program_id_programs")
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_proposals_project_id_projects")
        ),
        sa.ForeignKeyConstraint(["submitted_by"], ["users.id"], name=op.f("fk_proposals_submitted_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_proposals")),
        sa.UniqueConstraint("program_id", "project_id", name="uq_proposals_program_project"),
    )
    op.create_index(op.f("ix_proposals_program_id"), "proposals", ["program_id"], unique=False)
    op.create_index(op.f("ix_proposals_project_id"), "proposals", ["project_id"], unique=False)
    op.create_table(
        "awards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=True),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("program_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("gpu_hours_budget", sa.Float(), nullable=True),
        sa.Column("guaranteed_gpus", sa.Integer(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("gpu_hours_used", sa.Float(), nullable=False),
        sa.Column("reclaimed_gpus", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'active', 'expired', 'reclaimed')", name=op.f("ck_awards_status")
        ),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_awards_period")),
        sa.CheckConstraint("guaranteed_gpus >= 0", name=op.f("ck_awards_guaranteed")),
        sa.ForeignKeyConstraint(["program_id"], ["programs.id"], name=op.f("fk_awards_program_id_programs")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_awards_project_id_projects")),
        sa.ForeignKeyConstraint(
            ["proposal_id"], ["proposals.id"], name=op.f("fk_awards_proposal_id_proposals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_awards")),
    )
    op.create_index(op.f("ix_awards_program_id"), "awards", ["program_id"], unique=False)
    op.create_index(op.f("ix_awards_project_id"), "awards", ["project_id"], unique=False)
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("score >= 0 AND score <= 100", name=op.f("ck_reviews_score")),
        sa.ForeignKeyConstraint(
            ["proposal_id"],
            ["proposals.id"],
            name=op.f("fk_reviews_proposal_id_proposals"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["reviewer_id"], ["users.id"], name=op.f("fk_reviews_reviewer_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint("proposal_id", "reviewer_id", name="uq_reviews_proposal_reviewer"),
    )
    op.create_index(op.f("ix_reviews_proposal_id"), "reviews", ["proposal_id"], unique=False)
    op.create_table(
        "reclaims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("award_id", sa.Integer(), nullable=False),
        sa.Column("reclaimed_gpus", sa.Integer(), nullable=False),
        sa.Column("utilization", sa.Float(), nullable=False),
        sa.Column("reclaimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["award_id"], ["awards.id"], name=op.f("fk_reclaims_award_id_awards"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reclaims")),
    )
    op.create_index(op.f("ix_reclaims_award_id"), "reclaims", ["award_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_reclaims_award_id"), table_name="reclaims")
    op.drop_table("reclaims")
    op.drop_index(op.f("ix_reviews_proposal_id"), table_name="reviews")
    op.drop_table("reviews")
    op.drop_index(op.f("ix_awards_project_id"), table_name="awards")
    op.drop_index(op.f("ix_awards_program_id"), table_name="awards")
    op.drop_table("awards")
    op.drop_index(op.f("ix_proposals_project_id"), table_name="proposals")
    op.drop_index(op.f("ix_proposals_program_id"), table_name="proposals")
    op.drop_table("proposals")
    op.drop_index(op.f("ix_memberships_user_id"), table_name="memberships")
    op.drop_index(op.f("ix_memberships_project_id"), table_name="memberships")
    op.drop_table("memberships")
    op.drop_index(op.f("ix_projects_institution_id"), table_name="projects")
    op.drop_table("projects")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("users")
    op.drop_table("programs")
    op.drop_table("institutions")
