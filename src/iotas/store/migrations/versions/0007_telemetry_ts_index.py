"""Telemetry: drop the index on ts_us alone (retention walks series instead; decision 41).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_telemetry_ts", table_name="telemetry")


def downgrade() -> None:
    op.create_index("ix_telemetry_ts", "telemetry", ["ts_us"])
