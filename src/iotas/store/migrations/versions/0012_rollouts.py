"""Rollouts and their Things (domain.rollouts, services.rollouts).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Document = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec", Document, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(64), nullable=True),
        sa.Column("progress", Document, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        sa.Column("started_us", sa.BigInteger, nullable=True),
        sa.Column("finished_us", sa.BigInteger, nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
    )
    op.create_index("ix_rollouts_active", "rollouts", ["active"])
    op.create_index("ix_rollouts_status", "rollouts", ["status"])
    op.create_table(
        "rollout_things",
        sa.Column("rollout_id", sa.String(40), primary_key=True),
        sa.Column("thing_id", sa.String(200), primary_key=True),
        sa.Column("wave", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ref", sa.String(100), nullable=True),
        sa.Column("started_us", sa.BigInteger, nullable=True),
        sa.Column("finished_us", sa.BigInteger, nullable=True),
        sa.Column("outcome", Document, nullable=True),
    )
    op.create_index(
        "ix_rollout_things_status", "rollout_things", ["rollout_id", "status", "wave", "position"]
    )
    op.create_index("ix_rollout_things_started", "rollout_things", ["rollout_id", "started_us"])
    op.create_index("ix_rollout_things_ref", "rollout_things", ["ref"])


def downgrade() -> None:
    op.drop_table("rollout_things")
    op.drop_table("rollouts")
