"""The graph: an index table of every Thing's typed edges, filled from existing Things.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import json

import sqlalchemy as sa
from alembic import op

from iotas.domain.links import edges

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _document(value: object) -> object:
    # JSON columns come back decoded on PostgreSQL (jsonb) and as text on SQLite here.
    return json.loads(value) if isinstance(value, str) else value


def upgrade() -> None:
    links = op.create_table(
        "thing_links",
        sa.Column(
            "thing_id",
            sa.String(200),
            sa.ForeignKey("things.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("rel", sa.String(64), primary_key=True),
        sa.Column("target", sa.String(200), primary_key=True),
    )
    op.create_index("ix_thing_links_rel_target", "thing_links", ["rel", "target"])
    op.create_index("ix_thing_links_target", "thing_links", ["target"])
    things = sa.table("things", sa.column("id"), sa.column("links"), sa.column("description"))
    bind = op.get_bind()
    rows = []
    for thing_id, thing_links, description in bind.execute(
        sa.select(things.c.id, things.c.links, things.c.description)
    ):
        for rel, target in edges(_document(thing_links), _document(description)):
            rows.append({"thing_id": thing_id, "rel": rel, "target": target})
            if len(rows) >= 1000:
                op.bulk_insert(links, rows)
                rows = []
    if rows:
        op.bulk_insert(links, rows)


def downgrade() -> None:
    op.drop_table("thing_links")
