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
    # Staged samples (SQLite only) are not in the latest values yet: fold them in, newest of
    # each series, last received among equal times, then keep them as history.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "INSERT INTO telemetry_latest (thing_id, key, ts_us, num, value) "
            "SELECT thing_id, key, ts_us, num, value FROM (SELECT *, row_number() OVER "
            "(PARTITION BY thing_id, key ORDER BY ts_us DESC, rowid DESC) AS n "
            "FROM telemetry_staged) WHERE n = 1 ON CONFLICT (thing_id, key) DO UPDATE SET "
            "ts_us = excluded.ts_us, num = excluded.num, value = excluded.value "
            "WHERE excluded.ts_us >= telemetry_latest.ts_us"
        )
    op.execute(
        "INSERT INTO telemetry (thing_id, key, ts_us, num, value) "
        "SELECT thing_id, key, ts_us, num, value FROM telemetry_staged"
    )
    op.drop_table("telemetry_staged")
