"""The relational schema. Alembic migrations under `migrations/` create exactly this.

Times that are queried are integer microseconds since the epoch (`*_us`), so comparisons are
plain integer comparisons on both SQLite and PostgreSQL; documents carry RFC 3339 strings.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# JSON documents are JSONB on PostgreSQL (indexable, queryable) and JSON text on SQLite (JSON1).
Document = JSON().with_variant(JSONB(), "postgresql")

things = Table(
    "things",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("namespace", String(64), nullable=False, index=True),
    Column("kind", String(64), nullable=False),
    Column("attributes", Document, nullable=False),
    Column("labels", Document, nullable=False),
    Column("links", Document, nullable=False),
    Column("description", Document, nullable=True),
    Column("desired", Document, nullable=False),
    Column("reported", Document, nullable=False),
    Column("desired_meta", Document, nullable=False),
    Column("reported_meta", Document, nullable=False),
    Column("twin_version", BigInteger, nullable=False),
    Column("revision", BigInteger, nullable=False),
    Column("pending_since", String(32), nullable=True),
    # Set while the Thing has moved away on its own from a desired state it had reached.
    Column("drifted_since", String(32), nullable=True),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    # Presence: `connected` follows journaled connect/disconnect events; `last_seen_us` is
    # touched by every message and is not journaled (it would double the journal's volume).
    Column("connected", Boolean, nullable=False, server_default=false()),
    Column("last_seen_us", BigInteger, nullable=True),
    # Set while the Thing is quarantined: {"since", "reason", "by", "snapshot"} (journaled).
    Column("quarantine", Document, nullable=True),
    Index("ix_things_kind", "kind"),
)

# One row per scalar leaf of `attributes` and `labels` (path like "attributes.site" or
# "labels.tier"), so equality and range filters on them use an index instead of a scan.
# `value` is the canonical JSON of the scalar ("\"plant-7\"", "42", "true"); `num` is set
# for numbers only.
thing_fields = Table(
    "thing_fields",
    metadata,
    Column(
        "thing_id",
        String(200),
        ForeignKey("things.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("path", String(300), primary_key=True),
    Column("value", Text, nullable=False),
    Column("num", Float, nullable=True),
    Index("ix_thing_fields_path_value", "path", "value"),
    Index("ix_thing_fields_path_num", "path", "num"),
)

# A Thing's typed edges (`domain.links.edges`: its own links and those of its TD), so
# `linked()`, `reachable()` and `/graph` follow an index in both directions. A target need
# not exist (yet): the registry is eventually consistent, and such an edge is dangling.
thing_links = Table(
    "thing_links",
    metadata,
    Column(
        "thing_id",
        String(200),
        ForeignKey("things.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("rel", String(64), primary_key=True),
    Column("target", String(200), primary_key=True),
    Index("ix_thing_links_rel_target", "rel", "target"),
    Index("ix_thing_links_target", "target"),
)

# The journal. `body` holds the exact canonical bytes that were hashed (text, not JSONB, so
# nothing normalises them); the other columns are copies for indexing. `hash` =
# sha256(previous hash + body). `kind` names what `record_id` is: a Thing ("thing"), a token,
# a claim, a WoT binding (`domain.journal.KINDS`).
journal = Table(
    "journal",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts_us", BigInteger, nullable=False),
    Column("record_id", String(200), nullable=False),
    Column("type", String(40), nullable=False),
    Column("body", Text, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("kind", String(32), nullable=False, server_default="thing"),
    Index("ix_journal_kind_record_seq", "kind", "record_id", "seq"),
    Index("ix_journal_ts", "ts_us"),
)

# A single row (id = 1): the last seq, its hash and time. Every writing transaction locks
# it first, which makes seq gap-free and in commit order, and ts never go backwards.
journal_head = Table(
    "journal_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("ts_us", BigInteger, nullable=False),
)

# Device credentials. `secret_hash` is PBKDF2-SHA512 in Mosquitto's `$7$` format, so the same
# stored value can be handed to an external broker; the secret itself is never stored.
credentials = Table(
    "credentials",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("thing_id", String(200), nullable=False, index=True),
    Column("type", String(16), nullable=False),
    Column("secret_hash", Text, nullable=True),
    Column("created_us", BigInteger, nullable=False),
    Column("revoked_us", BigInteger, nullable=True),
    # X.509 only: the certificate's serial (hex, for the CRL) and the end of its validity,
    # brought forward to the end of the grace period when the certificate is renewed.
    Column("serial", String(40), nullable=True, index=True),
    Column("expires_us", BigInteger, nullable=True),
)


def _sample_columns() -> list[Column[Any]]:
    """A sample with its Thing: `num` for numbers, `value` (JSON text) otherwise."""
    return [
        Column("thing_id", String(200), nullable=False),
        Column("key", String(200), nullable=False),
        Column("ts_us", BigInteger, nullable=False),
        Column("num", Float, nullable=True),
        Column("value", Text, nullable=True),
    ]


# Telemetry samples, one row per value. Not journaled (too much volume); retention deletes
# old rows.
telemetry = Table(
    "telemetry",
    metadata,
    *_sample_columns(),
    # The only index: every series' samples in time order (retention walks series; an index
    # on ts_us alone cost a fifth of every insert, decision 41).
    Index("ix_telemetry_thing_key_ts", "thing_id", "key", "ts_us"),
)

# Samples just received on SQLite, in arrival order and without an index: appending is cheap
# where inserting into the series index costs about one page per series per commit. Moved
# into `telemetry` in bulk every few seconds (`telemetry_repo.move_staged`); queries read
# both. PostgreSQL inserts into `telemetry` directly and leaves this table empty.
telemetry_staged = Table("telemetry_staged", metadata, *_sample_columns())

# The newest sample per (Thing, key), so "the latest value" never scans the time series.
telemetry_latest = Table(
    "telemetry_latest",
    metadata,
    Column("thing_id", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("ts_us", BigInteger, nullable=False),
    Column("num", Float, nullable=True),
    Column("value", Text, nullable=True),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("subject", String(200), nullable=False),
    Column("role", String(20), nullable=False),
    Column("namespaces", Document, nullable=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=True),
    Column("revoked_us", BigInteger, nullable=True),
)

# Forensic snapshots: write-once documents of a Thing's complete state, addressed by the
# sha256 of their exact bytes (kept as text, as hashed). No code path updates or deletes a row.
snapshots = Table(
    "snapshots",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("thing_id", String(200), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Index("ix_snapshots_thing_created", "thing_id", "created_us"),
)

# Provisioning claims: a token (kept as a sha256 hash) that lets a device with only a serial
# number provision itself, bound to a template of the Thing it becomes.
claims = Table(
    "claims",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("template", Document, nullable=False),
    Column("max_uses", Integer, nullable=True),
    Column("uses", Integer, nullable=False, server_default="0"),
    Column("created_by", String(200), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=True),
    Column("revoked_us", BigInteger, nullable=True),
)


# Invocations of Things' actions (domain/invocations.py): the durable queue per Thing and the
# record of each call's outcome. `id` sorts in creation order.
invocations = Table(
    "invocations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("thing_id", String(200), nullable=False),
    Column("action", String(200), nullable=False),
    # Any JSON value, as JSON text: SQLite would store a JSON column's scalar `5` as an
    # integer (the column's numeric affinity), which no longer reads back as JSON.
    Column("input", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("expires_us", BigInteger, nullable=False),
    Column("delivered_us", BigInteger, nullable=True),
    Column("output", Text, nullable=True),
    Column("error", Document, nullable=True),
    Column("progress", Float, nullable=True),
    Column("idempotency_key", String(200), nullable=True),
    Column("rollout_id", String(64), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("actor", String(200), nullable=False),
    # A Thing's queue (pending in creation order, its open count, its list by status).
    Index("ix_invocations_thing_status_id", "thing_id", "status", "id"),
    # The expiry sweep and the Things with something pending.
    Index("ix_invocations_status_expires", "status", "expires_us"),
    Index("ix_invocations_thing_key", "thing_id", "idempotency_key"),
    Index("ix_invocations_rollout_id", "rollout_id", "id"),
)

# Rollouts (`domain.rollouts`): the spec as given (checked), the status, and `progress`: the
# wave sizes fixed when it started and when each wave opens. `active` is set while the
# controller has something to do (not final, or Things still in flight).
rollouts = Table(
    "rollouts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("spec", Document, nullable=False),
    Column("status", String(16), nullable=False),
    Column("reason", String(64), nullable=True),
    Column("progress", Document, nullable=False),
    Column("active", Boolean, nullable=False),
    Column("created_us", BigInteger, nullable=False),
    Column("updated_us", BigInteger, nullable=False),
    Column("started_us", BigInteger, nullable=True),
    Column("finished_us", BigInteger, nullable=True),
    Column("actor", String(200), nullable=False),
    Index("ix_rollouts_active", "active"),
    Index("ix_rollouts_status", "status"),
)

# Each Thing of a rollout: its wave and place in it, its status, and `ref`, the handle of the
# change started on it (an invocation id), written in the unit that starts the change.
rollout_things = Table(
    "rollout_things",
    metadata,
    Column("rollout_id", String(40), primary_key=True),
    Column("thing_id", String(200), primary_key=True),
    Column("wave", Integer, nullable=False),
    Column("position", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("ref", String(100), nullable=True),
    Column("started_us", BigInteger, nullable=True),
    Column("finished_us", BigInteger, nullable=True),
    Column("outcome", Document, nullable=True),
    Index("ix_rollout_things_status", "rollout_id", "status", "wave", "position"),
    Index("ix_rollout_things_started", "rollout_id", "started_us"),
    Index("ix_rollout_things_ref", "ref"),
)

# The columns a twin change writes (desired or reported state, their metadata, versions): the
# portable update in `things_repo` and SQLite's fast one in `dialects.sqlite` write these.
TWIN_COLUMNS = (
    "desired",
    "reported",
    "desired_meta",
    "reported_meta",
    "twin_version",
    "revision",
    "pending_since",
    "drifted_since",
    "updated_at",
)
