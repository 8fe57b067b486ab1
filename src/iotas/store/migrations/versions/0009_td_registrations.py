"""Directory: registration information of TDs registered through the directory (decision 45).

Existing databases: a Thing is taken as registered through the directory when its stored TD
has an `id` that names another Thing id (a `urn:...` TD, held by its derived `wot:` Thing) or
has forms of its own, and it is not adopted (no `wot_bindings` row). A Thing whose TD has no
forms and whose `id` is its own Thing id cannot be told apart from a native Thing's model: it
stays native, served as before. `created` and `modified` start as the Thing's own times.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_BATCH = 1000
_KINDS = ("properties", "actions", "events")
_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def upgrade() -> None:
    op.create_table(
        "td_registrations",
        sa.Column(
            "thing_id",
            sa.String(200),
            sa.ForeignKey("things.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("modified_us", sa.BigInteger, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=True),
        sa.Column("ttl", sa.Float, nullable=True),
    )
    op.create_index("ix_td_registrations_expires_us", "td_registrations", ["expires_us"])
    _backfill(op.get_bind())


def downgrade() -> None:
    op.drop_index("ix_td_registrations_expires_us", "td_registrations")
    op.drop_table("td_registrations")


def _backfill(bind: sa.Connection) -> None:
    document = sa.JSON().with_variant(JSONB(), "postgresql")
    things = sa.table(
        "things",
        sa.column("id", sa.String),
        sa.column("description", document),
        sa.column("created_at", sa.String),
        sa.column("updated_at", sa.String),
    )
    bindings = sa.table("wot_bindings", sa.column("thing_id", sa.String))
    registrations = sa.table(
        "td_registrations",
        sa.column("thing_id", sa.String),
        sa.column("created_us", sa.BigInteger),
        sa.column("modified_us", sa.BigInteger),
    )
    adopted = {row[0] for row in bind.execute(sa.select(bindings.c.thing_id))}
    after = ""
    while True:
        rows = bind.execute(
            sa.select(things.c.id, things.c.description, things.c.created_at, things.c.updated_at)
            .where(things.c.description.is_not(None), things.c.id > after)
            .order_by(things.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        found = [
            {"thing_id": tid, "created_us": _us(created), "modified_us": _us(updated)}
            for tid, description, created, updated in rows
            if tid not in adopted and _registered(tid, description)
        ]
        if found:
            bind.execute(sa.insert(registrations), found)
        after = rows[-1][0]


def _registered(thing_id: str, description: Any) -> bool:
    if not isinstance(description, dict) or not isinstance(description.get("id"), str):
        return False
    return description["id"] != thing_id or _has_forms(description)


def _has_forms(description: dict[str, Any]) -> bool:
    # As domain.td.has_own_forms was at this revision (a migration must not change with it).
    if description.get("forms"):
        return True
    for kind in _KINDS:
        affordances = description.get(kind)
        if isinstance(affordances, dict) and any(
            isinstance(a, dict) and a.get("forms") for a in affordances.values()
        ):
            return True
    return False


def _us(text: str) -> int:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
