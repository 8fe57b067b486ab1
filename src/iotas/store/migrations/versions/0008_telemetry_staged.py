"""Telemetry: a staging table, appended to by ingest on SQLite and moved into `telemetry` in
bulk (decision 43).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "telemetry_staged",
        sa.Column("thing_id", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("ts_us", sa.BigInteger(), nullable=False),
        sa.Column("num", sa.Float(), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    op.execute(
        "INSERT INTO telemetry (thing_id, key, ts_us, num, value) "
        "SELECT thing_id, key, ts_us, num, value FROM telemetry_staged"
    )
    op.drop_table("telemetry_staged")
