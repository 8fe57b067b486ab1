"""Telemetry samples, latest values and retention. Repositories never begin or commit.

Rows are tuples `(thing_id, key, ts_us, num, value)` (a `Sample` with its Thing in front).
Where the dialect stages telemetry (SQLite), ingest appends them to `telemetry_staged`, and
`move_staged` moves them into the series index of `telemetry`, and their latest values into
`telemetry_latest`, in bulk every few seconds (decision 43); queries read both.
Ingest is the hottest write path in iotas, so its statements are each dialect's own
(`iotas.store.dialects`): on SQLite the sqlite3 connection's executemany, on PostgreSQL one
statement over arrays, one round trip however many rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    BigInteger,
    CompoundSelect,
    Connection,
    Select,
    Table,
    bindparam,
    func,
    literal_column,
    select,
    tuple_,
    union_all,
)

from iotas.store import dialects
from iotas.store.dialects.base import Row, newest_per_series
from iotas.store.schema import telemetry, telemetry_latest, telemetry_staged

if TYPE_CHECKING:
    from iotas.store.store import WriteTx

__all__ = ["Row"]

# Every series has its row in telemetry_latest (ingest writes both; neither is deleted with a
# Thing), so retention walks that small table instead of the samples.
_SERIES = (
    select(telemetry_latest.c.thing_id, telemetry_latest.c.key)
    .order_by(telemetry_latest.c.thing_id, telemetry_latest.c.key)
    .limit(bindparam("lim"))
)
_SERIES_AFTER = _SERIES.where(
    tuple_(telemetry_latest.c.thing_id, telemetry_latest.c.key)
    > tuple_(bindparam("thing"), bindparam("key"))
)


def add_samples(conn: Connection, rows: Sequence[Row]) -> None:
    """Store samples, queryable and counted in the latest values from the commit on:
    staged where the dialect stages telemetry (see `move_staged`), else inserted, and the
    latest values upserted, at once."""
    if rows:
        dialects.of(conn).add_samples(conn, rows)


def move_staged(conn: Connection) -> int:
    """Move the staged samples into `telemetry` and fold them into the latest values; the
    samples moved (none where the dialect does not stage telemetry)."""
    return dialects.of(conn).move_staged(conn)


def upsert_latest(conn: Connection, rows: Iterable[Row]) -> None:
    """Make each row the latest value of its (Thing, key) unless a newer one is stored; of
    equal times the last received wins (as a point written again does in InfluxDB).

    Rows are first reduced to the newest per (Thing, key): PostgreSQL refuses to update one
    row twice in a statement, and fewer rows is less work on both.
    """
    reduced = newest_per_series(rows)
    if reduced:
        dialects.of(conn).upsert_latest(conn, reduced)


def existing_things(conn: Connection, thing_ids: Sequence[str]) -> set[str]:
    """Which of these Thing ids exist."""
    if not thing_ids:
        return set()
    return dialects.of(conn).existing_things(conn, thing_ids)


def touch_things(tx: WriteTx, thing_ids: Sequence[str], stale_us: int) -> None:
    """Set `last_seen` to the transaction's time for these Things where it is unset or before
    `stale_us`, in the rows and in what the store knows of them (its cache of committed state).

    `stale_us` <= the transaction's time, so last_seen never moves back; below it, a Thing
    seen again within the resolution is not rewritten (its row is wide and this runs for
    every message).
    """
    if not thing_ids:
        return
    dialects.of(tx.conn).touch_things(tx.conn, thing_ids, tx.ts_us, stale_us)
    tx.saw(thing_ids, tx.ts_us, stale_us)


def _ranges(
    conn: Connection, thing_id: str, key: str, from_us: int, to_us: int | None
) -> list[Select[Any]]:
    """(ts_us, num, value) of one key in [from, to): one select per table holding samples
    (the staged ones too, where the dialect stages them), each filtered itself so each uses
    its own access path."""
    tables: list[Table] = [telemetry]
    if dialects.of(conn).stages_telemetry:
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

    Staged samples count too, by the rule `move_staged` will apply: in the order
    received, a sample replaces one of the same time or older (see `upsert_latest`).
    """
    t = telemetry_latest
    query = select(t.c.key, t.c.ts_us, t.c.num, t.c.value).where(t.c.thing_id == thing_id)
    newest = {row.key: (row.key, row.ts_us, row.num, row.value) for row in conn.execute(query)}
    for key, ts_us, num, value in dialects.of(conn).staged_samples(conn, thing_id):
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
        found = conn.execute(_SERIES, {"lim": series_limit}).all()
    else:
        found = conn.execute(
            _SERIES_AFTER, {"thing": after[0], "key": after[1], "lim": series_limit}
        ).all()
    statement = dialects.of(conn).delete_oldest
    deleted = 0
    for thing_id, key in found:
        room = limit - deleted
        params = {"thing": thing_id, "key": key, "cutoff": cutoff_us, "lim": room}
        deleted += int(conn.execute(statement, params).rowcount)
        if deleted >= limit:  # this series may have more: the next step starts with it
            return Expired(deleted, after, False)
        after = (thing_id, key)
    return Expired(deleted, after, len(found) < series_limit)
