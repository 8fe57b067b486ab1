"""Web of Things: bindings of adopted Things, and the twin's drift mark.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wot_bindings",
        sa.Column(
            "thing_id",
            sa.String(200),
            sa.ForeignKey("things.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("td_url", sa.Text, nullable=True),
        sa.Column("poll_seconds", sa.Float, nullable=False),
        sa.Column("sealed_secrets", sa.Text, nullable=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("updated_us", sa.BigInteger, nullable=False),
    )
    with op.batch_alter_table("things") as batch:
        batch.add_column(sa.Column("drifted_since", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("things") as batch:
        batch.drop_column("drifted_since")
    op.drop_table("wot_bindings")
