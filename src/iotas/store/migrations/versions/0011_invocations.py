"""Invocations: the tracked calls of Things' actions and the durable queue per Thing.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_DOCUMENT = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "invocations",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("thing_id", sa.String(200), nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("input", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
        sa.Column("delivered_us", sa.BigInteger, nullable=True),
        sa.Column("output", sa.Text, nullable=True),
        sa.Column("error", _DOCUMENT, nullable=True),
        sa.Column("progress", sa.Float, nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("rollout_id", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("actor", sa.String(200), nullable=False),
    )
    op.create_index("ix_invocations_thing_status_id", "invocations", ["thing_id", "status", "id"])
    op.create_index("ix_invocations_status_expires", "invocations", ["status", "expires_us"])
    op.create_index("ix_invocations_thing_key", "invocations", ["thing_id", "idempotency_key"])
    op.create_index("ix_invocations_rollout_id", "invocations", ["rollout_id", "id"])


def downgrade() -> None:
    # Entries of kind invocation stay in the journal (they are part of its hash chain).
    op.drop_table("invocations")
