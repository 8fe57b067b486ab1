"""Things, the thing_fields index, the journal and its head, tokens.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Document = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "things",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("namespace", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        *(sa.Column(name, Document, nullable=False) for name in ("attributes", "labels", "links")),
        sa.Column("description", Document, nullable=True),
        *(
            sa.Column(name, Document, nullable=False)
            for name in ("desired", "reported", "desired_meta", "reported_meta")
        ),
        sa.Column("twin_version", sa.BigInteger, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("pending_since", sa.String(32), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_things_namespace", "things", ["namespace"])
    op.create_index("ix_things_kind", "things", ["kind"])
    op.create_table(
        "thing_fields",
        sa.Column(
            "thing_id",
            sa.String(200),
            sa.ForeignKey("things.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("path", sa.String(300), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("num", sa.Float, nullable=True),
    )
    op.create_index("ix_thing_fields_path_value", "thing_fields", ["path", "value"])
    op.create_index("ix_thing_fields_path_num", "thing_fields", ["path", "num"])
    op.create_table(
        "journal",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts_us", sa.BigInteger, nullable=False),
        sa.Column("thing_id", sa.String(200), nullable=False),
        sa.Column("type", sa.String(40), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_journal_thing_seq", "journal", ["thing_id", "seq"])
    op.create_index("ix_journal_ts", "journal", ["ts_us"])
    op.create_table(
        "journal_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("ts_us", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(
        sa.table(
            "journal_head",
            sa.column("id", sa.Integer),
            sa.column("seq", sa.BigInteger),
            sa.column("hash", sa.String),
            sa.column("ts_us", sa.BigInteger),
        ),
        [{"id": 1, "seq": 0, "hash": "0" * 64, "ts_us": 0}],
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("namespaces", Document, nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=True),
        sa.Column("revoked_us", sa.BigInteger, nullable=True),
    )


def downgrade() -> None:
    for table in ("tokens", "journal_head", "journal", "thing_fields", "things"):
        op.drop_table(table)
