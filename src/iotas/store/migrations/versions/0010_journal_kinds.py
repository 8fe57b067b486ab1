"""Journal: every entry names the kind of record and its id (decision 53).

`journal.thing_id` becomes `record_id`, and `kind` (default "thing") says what the id names.
Nothing is rewritten: the stored bodies are the exact bytes that were hashed, and a Thing's
body keeps its form ("thing_id", no "kind"), so the chain verifies as before.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # RENAME COLUMN: SQLite (3.25+) and PostgreSQL alike, without copying the table.
    op.execute("ALTER TABLE journal RENAME COLUMN thing_id TO record_id")
    op.add_column(
        "journal",
        sa.Column("kind", sa.String(32), nullable=False, server_default="thing"),
    )
    op.drop_index("ix_journal_thing_seq", table_name="journal")
    op.create_index("ix_journal_kind_record_seq", "journal", ["kind", "record_id", "seq"])


def downgrade() -> None:
    # Entries of other kinds cannot go back without cutting them out of the hash chain.
    others = op.get_bind().execute(sa.text("SELECT 1 FROM journal WHERE kind <> 'thing' LIMIT 1"))
    if others.first() is not None:
        raise RuntimeError("the journal has entries other than Things': it cannot go below 0010")
    op.drop_index("ix_journal_kind_record_seq", table_name="journal")
    op.drop_column("journal", "kind")
    op.execute("ALTER TABLE journal RENAME COLUMN record_id TO thing_id")
    op.create_index("ix_journal_thing_seq", "journal", ["thing_id", "seq"])
