"""Devices: presence columns, credentials, telemetry and its latest values.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _samples(name: str, *keys: sa.Column[str]) -> None:
    op.create_table(
        name,
        *keys,
        sa.Column("ts_us", sa.BigInteger, nullable=False),
        sa.Column("num", sa.Float, nullable=True),
        sa.Column("value", sa.Text, nullable=True),
    )


def upgrade() -> None:
    with op.batch_alter_table("things") as batch:
        batch.add_column(
            sa.Column("connected", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("last_seen_us", sa.BigInteger, nullable=True))
    op.create_table(
        "credentials",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("thing_id", sa.String(200), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.Text, nullable=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("revoked_us", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_credentials_thing_id", "credentials", ["thing_id"])
    _samples(
        "telemetry",
        sa.Column("thing_id", sa.String(200), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
    )
    op.create_index("ix_telemetry_thing_key_ts", "telemetry", ["thing_id", "key", "ts_us"])
    op.create_index("ix_telemetry_ts", "telemetry", ["ts_us"])
    _samples(
        "telemetry_latest",
        sa.Column("thing_id", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
    )


def downgrade() -> None:
    op.drop_table("telemetry_latest")
    op.drop_table("telemetry")
    op.drop_table("credentials")
    with op.batch_alter_table("things") as batch:
        batch.drop_column("last_seen_us")
        batch.drop_column("connected")
