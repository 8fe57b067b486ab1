"""PostgreSQL: statements over arrays (one round trip however many rows, asyncpg sends each
once), ctid deletes, the migration lock, and jsonb for the query compiler."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Executable,
    Float,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    func,
    literal,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, insert

from iotas.domain.query import Scalar
from iotas.store.dialects.base import (
    Column,
    Dialect,
    Row,
    Staged,
    newest_per_series,
    two_valued,
)

# Any constant works; it only has to be the same for every iotas node.
_MIGRATION_LOCK = 0x107A5
_LOCK_MIGRATIONS = text("SELECT pg_advisory_xact_lock(:k)").bindparams(k=_MIGRATION_LOCK)


def _lock_migrations(conn: Connection) -> None:
    """Nodes starting together must not run the same migration twice: the lock is held to
    the end of the migrating transaction."""
    conn.execute(_LOCK_MIGRATIONS)


def _upsert(
    table: Table, values: Mapping[str, Any], keys: Sequence[Any], update: Mapping[str, Any]
) -> Executable:
    return insert(table).values(**values).on_conflict_do_update(index_elements=keys, set_=update)


# --- telemetry -----------------------------------------------------------------------------

# Five arrays in, one statement.
_UNNEST = (
    " SELECT * FROM unnest(CAST(:thing_id AS TEXT[]), CAST(:key AS TEXT[]), "
    "CAST(:ts_us AS BIGINT[]), CAST(:num AS DOUBLE PRECISION[]), CAST(:value AS TEXT[]))"
)
_ARRAYS = (
    bindparam("thing_id", type_=ARRAY(Text)),
    bindparam("key", type_=ARRAY(Text)),
    bindparam("ts_us", type_=ARRAY(BigInteger)),
    bindparam("num", type_=ARRAY(Float)),
    bindparam("value", type_=ARRAY(Text)),
)
_INSERT = text("INSERT INTO telemetry (thing_id, key, ts_us, num, value)" + _UNNEST).bindparams(
    *_ARRAYS
)
_UPSERT = text(
    "INSERT INTO telemetry_latest (thing_id, key, ts_us, num, value)"
    + _UNNEST
    + " ON CONFLICT (thing_id, key) DO UPDATE SET "
    "ts_us = excluded.ts_us, num = excluded.num, value = excluded.value "
    "WHERE excluded.ts_us >= telemetry_latest.ts_us"
).bindparams(*_ARRAYS)
# By physical row id, found through the series index (there is no index on ts_us alone: it
# cost a fifth of every insert; decision 41). PostgreSQL plans `ctid = ANY(ARRAY(...))` as a
# TID scan; `ctid IN (SELECT ...)` could become a full scan.
_DELETE_OLDEST = text(
    "DELETE FROM telemetry WHERE ctid = ANY(ARRAY(SELECT ctid FROM telemetry "
    "WHERE thing_id = :thing AND key = :key AND ts_us < :cutoff ORDER BY ts_us LIMIT :lim))"
)
# A list of Thing ids is one array parameter: the same statement for every batch.
_EXISTING = text("SELECT id FROM things WHERE id = ANY(:ids)").bindparams(
    bindparam("ids", type_=ARRAY(Text))
)
_TOUCH = text(
    "UPDATE things SET last_seen_us = :seen WHERE id = ANY(:ids) "
    "AND (last_seen_us IS NULL OR last_seen_us < :stale)"
).bindparams(
    bindparam("ids", type_=ARRAY(Text)),
    bindparam("seen", type_=BigInteger),
    bindparam("stale", type_=BigInteger),
)


# --- the journal ---------------------------------------------------------------------------

# A batch's events and the new head in one statement: one round trip per batch, however many
# units it holds (as rows, each event was a round trip, and the head one more).
_JOURNAL_COLUMNS = ("seq", "ts_us", "kind", "record_id", "type", "body", "hash")
_APPEND_JOURNAL = text(
    "WITH appended AS (INSERT INTO journal (seq, ts_us, kind, record_id, type, body, hash) "
    "SELECT * FROM unnest(CAST(:seq AS BIGINT[]), CAST(:ts_us AS BIGINT[]), "
    "CAST(:kind AS TEXT[]), CAST(:record_id AS TEXT[]), CAST(:type AS TEXT[]), "
    "CAST(:body AS TEXT[]), CAST(:hash AS TEXT[]))) "
    "UPDATE journal_head SET seq = :head_seq, hash = :head_hash, ts_us = :head_ts_us "
    "WHERE id = 1"
).bindparams(
    bindparam("seq", type_=ARRAY(BigInteger)),
    bindparam("ts_us", type_=ARRAY(BigInteger)),
    *(bindparam(name, type_=ARRAY(Text)) for name in ("kind", "record_id", "type", "body", "hash")),
    bindparam("head_seq", type_=BigInteger),
    bindparam("head_hash", type_=Text),
    bindparam("head_ts_us", type_=BigInteger),
)


def append_journal(
    conn: Connection, events: Sequence[Mapping[str, Any]], seq: int, digest: str, ts_us: int
) -> None:
    """Insert the events (rows of the journal table) and move the head to (seq, digest, ts_us),
    inside the caller's transaction, which holds the head row's lock."""
    params: dict[str, Any] = {name: [e[name] for e in events] for name in _JOURNAL_COLUMNS}
    conn.execute(
        _APPEND_JOURNAL, {**params, "head_seq": seq, "head_hash": digest, "head_ts_us": ts_us}
    )


def _columns(rows: Sequence[Row]) -> dict[str, list[Any]]:
    thing_ids, keys, stamps, nums, values = zip(*rows, strict=True)
    return {
        "thing_id": list(thing_ids),
        "key": list(keys),
        "ts_us": list(stamps),
        "num": list(nums),
        "value": list(values),
    }


def _add_samples(conn: Connection, rows: Sequence[Row]) -> None:
    """Inserted, and the latest values upserted, at once: nothing is staged."""
    conn.execute(_INSERT, _columns(rows))
    _upsert_latest(conn, newest_per_series(rows))


def _upsert_latest(conn: Connection, rows: Sequence[Row]) -> None:
    # One row per (Thing, key): PostgreSQL refuses to update one row twice in a statement.
    if rows:
        conn.execute(_UPSERT, _columns(rows))


def _move_staged(_conn: Connection) -> int:
    return 0  # nothing is staged


def _staged_samples(_conn: Connection, _thing_id: str) -> Iterable[Staged]:
    return ()


def _existing_things(conn: Connection, thing_ids: Sequence[str]) -> set[str]:
    return set(conn.execute(_EXISTING, {"ids": list(thing_ids)}).scalars())


def _touch_things(conn: Connection, thing_ids: Sequence[str], seen_us: int, stale_us: int) -> None:
    conn.execute(_TOUCH, {"ids": list(thing_ids), "seen": seen_us, "stale": stale_us})


# --- JSON documents (jsonb) ----------------------------------------------------------------


class PostgresDocuments:
    """jsonb: `->` with a text key reads object members only, never array elements."""

    def member(self, col: Column, path: Sequence[str], *, as_text: bool = False) -> Column:
        expr: Column = col
        for key in path[:-1]:
            expr = expr.op("->", return_type=JSONB)(literal(key, Text))
        last = literal(path[-1], Text)
        if as_text:
            return expr.op("->>", return_type=Text)(last)
        return expr.op("->", return_type=JSONB)(last)

    def exists(self, col: Column, path: Sequence[str]) -> ColumnElement[bool]:
        return self.member(col, path).is_not(None)

    def equals(self, col: Column, path: Sequence[str], value: Scalar) -> ColumnElement[bool]:
        # jsonb equality is JSON equality: types must match and 1 = 1.0.
        return two_valued(self.member(col, path) == _jsonb(value))

    def one_of(
        self, col: Column, path: Sequence[str], values: Sequence[Scalar]
    ) -> ColumnElement[bool]:
        items = cast(literal([json.dumps(v) for v in values], ARRAY(Text)), ARRAY(JSONB))
        return two_valued(self.member(col, path) == any_(items))

    def order(
        self, col: Column, path: Sequence[str], op: str, value: int | float | str
    ) -> ColumnElement[bool]:
        member = self.member(col, path)
        if isinstance(value, str):
            text = self.member(col, path, as_text=True)
            return two_valued(
                and_(
                    func.jsonb_typeof(member) == literal("string"),
                    self.column_order(text, op, value),
                )
            )
        return two_valued(
            and_(
                func.jsonb_typeof(member) == literal("number"),
                member.op(op, is_comparison=True)(_jsonb(value)),
            )
        )

    def glob(self, col: Column, path: Sequence[str], pattern: str) -> ColumnElement[bool]:
        member = self.member(col, path)
        text = self.member(col, path, as_text=True)
        return two_valued(
            and_(func.jsonb_typeof(member) == literal("string"), self.column_glob(text, pattern))
        )

    def column_glob(self, col: Column, pattern: str) -> ColumnElement[bool]:
        return col.like(_like_pattern(pattern), escape="\\")

    def column_order(self, col: Column, op: str, value: str) -> ColumnElement[bool]:
        # The database collation may be linguistic; "C" compares code points, as Python does.
        return col.collate("C").op(op, is_comparison=True)(literal(value))


def _jsonb(value: Any) -> Column:
    return cast(literal(json.dumps(value), Text), JSONB)


def _like_pattern(glob: str) -> str:
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


DIALECT = Dialect(
    name="postgresql",
    documents=PostgresDocuments(),
    upsert=_upsert,
    lock_migrations=_lock_migrations,
    stages_telemetry=False,
    add_samples=_add_samples,
    upsert_latest=_upsert_latest,
    move_staged=_move_staged,
    staged_samples=_staged_samples,
    existing_things=_existing_things,
    touch_things=_touch_things,
    delete_oldest=_DELETE_OLDEST,
    round_trips=True,
)
