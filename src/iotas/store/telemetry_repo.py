"""Telemetry samples, latest values and retention. Repositories never begin or commit.

Rows are tuples `(thing_id, key, ts_us, num, value)` (a `Sample` with its Thing in front).
On SQLite, ingest appends them to `telemetry_staged`, and `move_staged` moves them into the
series index of `telemetry`, and their latest values into `telemetry_latest`, in bulk every
few seconds (decision 43); queries read both.
Ingest is the hottest write path in iotas, so its statements skip SQLAlchemy's per-row work
where that showed in measurements: on SQLite they go to the sqlite3 connection's executemany
(the way the store's batch statements do), on PostgreSQL each is one statement over arrays
(`unnest`), one round trip however many rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    CompoundSelect,
    Connection,
    Float,
    Select,
    Table,
    Text,
    bindparam,
    func,
    literal_column,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY

from iotas.store.schema import telemetry, telemetry_latest, telemetry_staged
from iotas.store.sqlite_driver import sqlite_connection

Row = tuple[str, str, int, float | None, str | None]

_SQLITE_STAGE = (
    "INSERT INTO telemetry_staged (thing_id, key, ts_us, num, value) VALUES (?, ?, ?, ?, ?)"
)
# Each series' rows together, so that the series index takes them page by page; the DELETE
# without a WHERE is SQLite's truncate, which frees the pages without visiting the rows.
_SQLITE_MOVE = (
    "INSERT INTO telemetry (thing_id, key, ts_us, num, value) "
    "SELECT thing_id, key, ts_us, num, value FROM telemetry_staged "
    "ORDER BY thing_id, key, ts_us, rowid"
)
_ON_CONFLICT = (
    " ON CONFLICT (thing_id, key) DO UPDATE SET "
    "ts_us = excluded.ts_us, num = excluded.num, value = excluded.value "
    "WHERE excluded.ts_us >= telemetry_latest.ts_us"
)
_SQLITE_UPSERT = (
    "INSERT INTO telemetry_latest (thing_id, key, ts_us, num, value) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (thing_id, key) DO UPDATE SET "
    "ts_us = excluded.ts_us, num = excluded.num, value = excluded.value "
    "WHERE excluded.ts_us >= telemetry_latest.ts_us"
)
# After a move: the newest sample of each series moved, the last received among equal times
# (rows of one move enter `telemetry` in the order received within equal times, and a row
# gets a greater rowid than every row already there). One step back in the series index per
# series; a window function over the staged rows took 1.3 times the CPU of the whole move.
_SQLITE_FOLD_LATEST = (
    "INSERT INTO telemetry_latest (thing_id, key, ts_us, num, value) "
    "SELECT t.thing_id, t.key, t.ts_us, t.num, t.value "
    "FROM (SELECT DISTINCT thing_id, key FROM telemetry_staged) AS s "
    "JOIN telemetry AS t ON t.rowid = (SELECT rowid FROM telemetry AS i "
    "WHERE i.thing_id = s.thing_id AND i.key = s.key ORDER BY i.ts_us DESC, i.rowid DESC LIMIT 1) "
    "WHERE true ON CONFLICT (thing_id, key) DO UPDATE SET "
    "ts_us = excluded.ts_us, num = excluded.num, value = excluded.value "
    "WHERE excluded.ts_us >= telemetry_latest.ts_us"
)
_SQLITE_STAGED_OF = (
    "SELECT key, ts_us, num, value FROM telemetry_staged WHERE thing_id = ? ORDER BY rowid"
)
# Five arrays in, one statement: asyncpg sends it once however many rows there are.
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
_PG_INSERT = text("INSERT INTO telemetry (thing_id, key, ts_us, num, value)" + _UNNEST).bindparams(
    *_ARRAYS
)
_PG_UPSERT = text(
    "INSERT INTO telemetry_latest (thing_id, key, ts_us, num, value)" + _UNNEST + _ON_CONFLICT
).bindparams(*_ARRAYS)
# Bounded deletes of one series by physical row id, found through the series index (there
# is no index on ts_us alone: it cost a fifth of every insert; decision 41). PostgreSQL plans
# `ctid = ANY(ARRAY(...))` as a TID scan; `ctid IN (SELECT ...)` could become a full scan.
_SQLITE_DELETE = text(
    "DELETE FROM telemetry WHERE rowid IN (SELECT rowid FROM telemetry "
    "WHERE thing_id = :thing AND key = :key AND ts_us < :cutoff ORDER BY ts_us LIMIT :lim)"
)
_PG_DELETE = text(
    "DELETE FROM telemetry WHERE ctid = ANY(ARRAY(SELECT ctid FROM telemetry "
    "WHERE thing_id = :thing AND key = :key AND ts_us < :cutoff ORDER BY ts_us LIMIT :lim))"
)
# Every series has its row in telemetry_latest (ingest writes both; neither is deleted with a
# Thing), so retention walks that small table instead of the samples.
_SERIES_AFTER = text(
    "SELECT thing_id, key FROM telemetry_latest WHERE (thing_id, key) > (:thing, :key) "
    "ORDER BY thing_id, key LIMIT :lim"
)
_SERIES_FIRST = text("SELECT thing_id, key FROM telemetry_latest ORDER BY thing_id, key LIMIT :lim")
# A list of Thing ids is one parameter (a JSON array on SQLite, an array on PostgreSQL), so
# the statement is the same for every batch and needs no per-id placeholders.
_SQLITE_EXISTING = "SELECT id FROM things WHERE id IN (SELECT value FROM json_each(?))"
_PG_EXISTING = text("SELECT id FROM things WHERE id = ANY(:ids)").bindparams(
    bindparam("ids", type_=ARRAY(Text))
)
_SQLITE_TOUCH = (
    "UPDATE things SET last_seen_us = ? WHERE id IN (SELECT value FROM json_each(?)) "
    "AND (last_seen_us IS NULL OR last_seen_us < ?)"
)
_PG_TOUCH = text(
    "UPDATE things SET last_seen_us = :seen WHERE id = ANY(:ids) "
    "AND (last_seen_us IS NULL OR last_seen_us < :stale)"
).bindparams(
    bindparam("ids", type_=ARRAY(Text)),
    bindparam("seen", type_=BigInteger),
    bindparam("stale", type_=BigInteger),
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


def add_samples(conn: Connection, rows: Sequence[Row]) -> None:
    """Store samples, queryable and counted in the latest values from the commit on.

    On SQLite they are staged (see `move_staged`); on PostgreSQL inserted, and the latest
    values upserted, at once.
    """
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        raw = sqlite_connection(conn)
        raw.executemany(_SQLITE_STAGE, rows)
    else:
        conn.execute(_PG_INSERT, _columns(rows))
        upsert_latest(conn, rows)


def move_staged(conn: Connection) -> int:
    """Move the staged samples into `telemetry` and fold them into the latest values
    (SQLite); the samples moved.

    Three statements, each all inside SQLite: the store runs this on a thread of its own
    (`Store.write_aside`), and sqlite3 releases the GIL for the whole of each statement.
    Inserting a few seconds of samples at once, sorted by series, dirties each series' last
    index page once, where each ingest commit would have dirtied it again; and each series'
    latest value is written once per move instead of once per commit (decision 43).
    """
    raw = sqlite_connection(conn)
    moved = raw.execute(_SQLITE_MOVE).rowcount
    raw.execute(_SQLITE_FOLD_LATEST)
    raw.execute("DELETE FROM telemetry_staged")
    return int(moved)


def upsert_latest(conn: Connection, rows: Iterable[Row]) -> None:
    """Make each row the latest value of its (Thing, key) unless a newer one is stored; of
    equal times the last received wins (as a point written again does in InfluxDB).

    Rows are first reduced to the newest per (Thing, key): PostgreSQL refuses to update one
    row twice in a statement, and fewer rows is less work on both.
    """
    newest: dict[tuple[str, str], Row] = {}
    for row in rows:
        seen = newest.get((row[0], row[1]))
        if seen is None or row[2] >= seen[2]:
            newest[(row[0], row[1])] = row
    if not newest:
        return
    # In (Thing, key) order, so that concurrent upserts lock shared rows in the same order.
    reduced = [newest[pair] for pair in sorted(newest)]
    if conn.dialect.name == "sqlite":
        raw = sqlite_connection(conn)
        raw.executemany(_SQLITE_UPSERT, reduced)
    else:
        conn.execute(_PG_UPSERT, _columns(reduced))


def existing_things(conn: Connection, thing_ids: Sequence[str]) -> set[str]:
    """Which of these Thing ids exist."""
    if not thing_ids:
        return set()
    if conn.dialect.name == "sqlite":
        raw = sqlite_connection(conn)
        cursor = raw.execute(_SQLITE_EXISTING, (orjson.dumps(list(thing_ids)).decode(),))
        return {row[0] for row in cursor}
    return set(conn.execute(_PG_EXISTING, {"ids": list(thing_ids)}).scalars())


def touch_things(conn: Connection, thing_ids: Sequence[str], seen_us: int, stale_us: int) -> None:
    """Set `last_seen_us` to `seen_us` for these Things where it is unset or before `stale_us`.

    `stale_us` <= `seen_us`, so last_seen never moves back; below it, a Thing seen again
    within the resolution is not rewritten (its row is wide and this runs for every message).
    """
    if not thing_ids:
        return
    if conn.dialect.name == "sqlite":
        raw = sqlite_connection(conn)
        raw.execute(_SQLITE_TOUCH, (seen_us, orjson.dumps(list(thing_ids)).decode(), stale_us))
    else:
        conn.execute(_PG_TOUCH, {"ids": list(thing_ids), "seen": seen_us, "stale": stale_us})


def _ranges(
    conn: Connection, thing_id: str, key: str, from_us: int, to_us: int | None
) -> list[Select[Any]]:
    """(ts_us, num, value) of one key in [from, to): one select per table holding samples
    (the staged ones too on SQLite), each filtered itself so each uses its own access path."""
    tables: list[Table] = [telemetry]
    if conn.dialect.name == "sqlite":
        tables.append(telemetry_staged)
    selects = []
    for table in tables:
        query = select(table.c.ts_us, table.c.num, table.c.value).where(
            table.c.thing_id == thing_id, table.c.key == key, table.c.ts_us >= from_us
        )
        selects.append(query if to_us is None else query.where(table.c.ts_us < to_us))
    return selects


def _samples(
    conn: Connection, thing_id: str, key: str, from_us: int, to_us: int | None
) -> Select[Any] | CompoundSelect[Any]:
    """`_ranges` as one selectable: their UNION ALL where there are two."""
    selects = _ranges(conn, thing_id, key, from_us, to_us)
    return union_all(*selects) if len(selects) > 1 else selects[0]


def raw_samples(
    conn: Connection, thing_id: str, key: str, from_us: int, to_us: int | None, limit: int
) -> list[tuple[int, float | None, str | None]]:
    """Up to `limit` samples of one key in [from, to), oldest first, as (ts_us, num, value)."""
    # ORDER BY on the compound itself: SQLite merges the two ordered arms (the series index,
    # a sort of the few staged rows) and stops at the limit, rather than sorting them all.
    samples = _samples(conn, thing_id, key, from_us, to_us)
    query = samples.order_by(literal_column("ts_us")).limit(limit)
    return [(row.ts_us, row.num, row.value) for row in conn.execute(query)]


def buckets(
    conn: Connection,
    thing_id: str,
    key: str,
    from_us: int,
    to_us: int | None,
    bucket_us: int,
    agg: str,
    limit: int,
) -> list[tuple[int, float | int | None, str | None]]:
    """Up to `limit` buckets of one key, oldest first, as (bucket start, num, value).

    The bucket start is floor(ts / bucket) * bucket in integer arithmetic on both databases
    (timestamps are after 2000, so truncating division is flooring). `avg`, `min` and `max`
    use numeric samples only and skip buckets that have none; `count` counts every sample;
    `last` is the sample with the greatest ts in the bucket, whatever its type.
    """
    width = bindparam("bucket_us", bucket_us, type_=BigInteger)
    samples = _samples(conn, thing_id, key, from_us, to_us).subquery()
    start = ((samples.c.ts_us // width) * width).label("bucket")
    inner = select(start, samples.c.ts_us, samples.c.num, samples.c.value).subquery()
    bucket = inner.c.bucket
    if agg == "last":
        rank = func.row_number().over(partition_by=bucket, order_by=inner.c.ts_us.desc())
        ranked = select(bucket, inner.c.num, inner.c.value, rank.label("rank")).subquery()
        query = (
            select(ranked.c.bucket, ranked.c.num, ranked.c.value)
            .where(ranked.c.rank == 1)
            .order_by(ranked.c.bucket)
            .limit(limit)
        )
        return [(row.bucket, row.num, row.value) for row in conn.execute(query)]
    if agg == "count":
        counted = select(bucket, func.count().label("v")).group_by(bucket)
    else:
        value = {
            "avg": func.avg(inner.c.num),
            "min": func.min(inner.c.num),
            "max": func.max(inner.c.num),
        }[agg]
        counted = select(bucket, value.label("v")).where(inner.c.num.is_not(None)).group_by(bucket)
    query = counted.order_by(bucket).limit(limit)
    found = conn.execute(query).all()
    # Drivers differ in the types they hand back (int, float, Decimal): normalise.
    if agg == "count":
        return [(row.bucket, int(row.v), None) for row in found]
    return [(row.bucket, float(row.v), None) for row in found]


def latest(conn: Connection, thing_id: str) -> list[tuple[str, int, float | None, str | None]]:
    """The newest sample of each key of the Thing, as (key, ts_us, num, value), by key.

    On SQLite, staged samples count too, by the rule `move_staged` will apply: in the order
    received, a sample replaces one of the same time or older (see `upsert_latest`).
    """
    t = telemetry_latest
    query = select(t.c.key, t.c.ts_us, t.c.num, t.c.value).where(t.c.thing_id == thing_id)
    newest = {row.key: (row.key, row.ts_us, row.num, row.value) for row in conn.execute(query)}
    if conn.dialect.name == "sqlite":
        for key, ts_us, num, value in sqlite_connection(conn).execute(
            _SQLITE_STAGED_OF, (thing_id,)
        ):
            seen = newest.get(key)
            if seen is None or ts_us >= seen[1]:
                newest[key] = (key, ts_us, num, value)
    return [newest[key] for key in sorted(newest)]


def keys(conn: Connection, thing_id: str) -> list[str]:
    """Every key the Thing has sent (one row per key in the latest values), in order."""
    return [row[0] for row in latest(conn, thing_id)]


Series = tuple[str, str]  # (Thing id, key)


@dataclass(frozen=True, slots=True)
class Expired:
    """What one bounded retention step did: samples deleted, and where the next step starts
    (after this series; None: from the first), or done."""

    deleted: int
    after: Series | None
    done: bool


def delete_older_than(
    conn: Connection,
    cutoff_us: int,
    limit: int,
    after: Series | None = None,
    series_limit: int = 500,
) -> Expired:
    """Delete samples older than the cutoff, series by series in (Thing, key) order from the
    one after `after`: at most `limit` samples and `series_limit` series in all, each
    series' oldest first.

    Latest values are kept whatever their age: "the last thing this sensor said" stays
    answerable after its history has expired.
    """
    if after is None:
        found = conn.execute(_SERIES_FIRST, {"lim": series_limit}).all()
    else:
        found = conn.execute(
            _SERIES_AFTER, {"thing": after[0], "key": after[1], "lim": series_limit}
        ).all()
    statement = _SQLITE_DELETE if conn.dialect.name == "sqlite" else _PG_DELETE
    deleted = 0
    for thing_id, key in found:
        room = limit - deleted
        params = {"thing": thing_id, "key": key, "cutoff": cutoff_us, "lim": room}
        deleted += int(conn.execute(statement, params).rowcount)
        if deleted >= limit:  # this series may have more: the next step starts with it
            return Expired(deleted, after, False)
        after = (thing_id, key)
    return Expired(deleted, after, len(found) < series_limit)
