"""Tables of the Web of Things adapter (same metadata as `schema`; migration 0003)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, ForeignKey, String, Table, Text

from iotas.store.schema import metadata

# One row per adopted third-party Thing: where its TD came from, how often to poll it, and
# the credentials its TD's security schemes need, sealed by `services.secret_box` (never in
# the journal, never in clear). The Thing's TD itself is its `description`.
wot_bindings = Table(
    "wot_bindings",
    metadata,
    Column(
        "thing_id",
        String(200),
        ForeignKey("things.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("td_url", Text, nullable=True),
    Column("poll_seconds", Float, nullable=False),
    Column("sealed_secrets", Text, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
)
