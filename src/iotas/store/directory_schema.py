"""The directory's table (same metadata as `schema`; migration 0009)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, ForeignKey, Index, String, Table

from iotas.store.schema import metadata

# One row per TD registered through the directory (WoT Discovery's registration information):
# such a Thing's description is the TD as registered, served as it is. A Thing without a row
# is native (its description, if any, is a model for the generated TD) or adopted. Not
# journaled, like `wot_bindings`: the TD itself is, as the Thing's description.
td_registrations = Table(
    "td_registrations",
    metadata,
    Column(
        "thing_id",
        String(200),
        ForeignKey("things.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("created_us", BigInteger, nullable=False),
    Column("modified_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=True),
    Column("ttl", Float, nullable=True),
    Index("ix_td_registrations_expires_us", "expires_us"),
)
