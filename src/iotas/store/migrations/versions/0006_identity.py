"""Identity: quarantine on Things, certificate serials and expiry on credentials, claims.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_DOCUMENT = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("things") as batch:
        batch.add_column(sa.Column("quarantine", _DOCUMENT, nullable=True))
    with op.batch_alter_table("credentials") as batch:
        batch.add_column(sa.Column("serial", sa.String(40), nullable=True))
        batch.add_column(sa.Column("expires_us", sa.BigInteger, nullable=True))
    op.create_index("ix_credentials_serial", "credentials", ["serial"])
    op.create_table(
        "claims",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("template", _DOCUMENT, nullable=False),
        sa.Column("max_uses", sa.Integer, nullable=True),
        sa.Column("uses", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=True),
        sa.Column("revoked_us", sa.BigInteger, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("claims")
    op.drop_index("ix_credentials_serial", "credentials")
    with op.batch_alter_table("credentials") as batch:
        batch.drop_column("expires_us")
        batch.drop_column("serial")
    with op.batch_alter_table("things") as batch:
        batch.drop_column("quarantine")
