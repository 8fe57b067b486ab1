"""SQLite (embedded): its settings, the statements that go straight to the sqlite3 driver
because SQLAlchemy's per-statement work cost more there than SQLite's own, staged
telemetry (decision 43), and JSON1 for the query compiler."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Executable,
    Select,
    Table,
    Text,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    text,
    true,
    type_coerce,
)
from sqlalchemy.dialects.sqlite import insert

from iotas.domain import clock
from iotas.domain.query import Scalar
from iotas.domain.things import Thing
from iotas.domain.twin import Twin
from iotas.store.dialects.base import (
    Column,
    Dialect,
    Row,
    Staged,
    is_number,
    two_valued,
)
from iotas.store.schema import TWIN_COLUMNS, things

# Every connection's. WAL lets readers go on during a write; a writer that finds the file
# locked (another connection's checkpoint) waits rather than failing at once. A page cache
# of 32 MiB (taken as pages are used; the writer's is larger, below): an attribute query
# matching 1% of 100,000 Things reads about 1,000 Things at random, and with SQLite's 2 MiB
# default each of its pages came from the file again on every query (decision 67).
CONNECT_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=15000",
    "PRAGMA cache_size=-32768",
)
# The writer's own. Telemetry lands at the end of every (Thing, key) series in its index, so
# each move of staged samples dirties about one page per active series, thousands of them:
# with SQLite's default 2 MiB page cache they were read back from the file every time
# (decisions 41 and 43). The writer does not checkpoint: a checkpoint run by a commit held the
# event loop for the whole copy (up to 120 ms for 10,000 pages), so a thread of the store
# checkpoints from a connection of its own (`CHECKPOINT`, `SqliteStore`; decision 60). The
# autocheckpoint stays as a backstop, far above what that thread lets the WAL grow to.
WRITER_PRAGMAS = (
    "PRAGMA cache_size=-65536",  # KiB: 64 MiB, taken as pages are used
    "PRAGMA wal_autocheckpoint=100000",  # pages: about 400 MiB, only if the thread stalls
)
# PASSIVE: copies what it can without waiting for the writer or readers, and never blocks
# them; the writer starts the WAL over at its next commit once everything is copied.
CHECKPOINT = "PRAGMA wal_checkpoint(PASSIVE)"
# How often the checkpoint thread runs one, in seconds.
CHECKPOINT_INTERVAL = 1.0


# The writer's `synchronous` for each durability setting (`Settings.durability`): FULL syncs
# the WAL at every commit, so an acknowledged change survives a power cut; NORMAL syncs it
# only at checkpoints, so it survives a crash of iotas, not of the machine. Readers never
# write, so theirs does not matter.
SYNCHRONOUS = {"normal": "PRAGMA synchronous=NORMAL", "full": "PRAGMA synchronous=FULL"}
# The execution option that makes a connection's transactions take the write lock up front:
# a deferred transaction that upgrades to a write later can fail with SQLITE_BUSY instead of
# waiting for the lock.
IMMEDIATE = "sqlite_immediate"
# The value of that option for a connection whose owner sends `BEGIN IMMEDIATE` to the driver
# itself before SQLAlchemy's begin (the store's writer, once per batch): SQLAlchemy's
# statement path for it was a measurable share of a batch on the event loop.
SELF_BEGUN = "self_begun"
BEGIN_IMMEDIATE = "BEGIN IMMEDIATE"


def begin(immediate: bool | str) -> str | None:
    """The statement SQLAlchemy's begin sends for a connection with this `IMMEDIATE` option
    (None: its owner has begun already)."""
    if immediate == SELF_BEGUN:
        return None
    return BEGIN_IMMEDIATE if immediate else "BEGIN"


def sqlite_connection(conn: Connection) -> sqlite3.Connection:
    """The sqlite3 connection under a SQLAlchemy one."""
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    return raw


def _upsert(
    table: Table, values: Mapping[str, Any], keys: Sequence[Any], update: Mapping[str, Any]
) -> Executable:
    return insert(table).values(**values).on_conflict_do_update(index_elements=keys, set_=update)


def _lock_migrations(_conn: Connection) -> None:
    """Nothing to take: migrations run in an IMMEDIATE transaction, which excludes every
    other writer of the file."""


# --- telemetry -----------------------------------------------------------------------------

_STAGE = "INSERT INTO telemetry_staged (thing_id, key, ts_us, num, value) VALUES (?, ?, ?, ?, ?)"
# Each series' rows together, so that the series index takes them page by page; the DELETE
# without a WHERE is SQLite's truncate, which frees the pages without visiting the rows.
_MOVE = (
    "INSERT INTO telemetry (thing_id, key, ts_us, num, value) "
    "SELECT thing_id, key, ts_us, num, value FROM telemetry_staged "
    "ORDER BY thing_id, key, ts_us, rowid"
)
_TRUNCATE_STAGED = "DELETE FROM telemetry_staged"
_UPSERT = (
    "INSERT INTO telemetry_latest (thing_id, key, ts_us, num, value) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (thing_id, key) DO UPDATE SET "
    "ts_us = excluded.ts_us, num = excluded.num, value = excluded.value "
    "WHERE excluded.ts_us >= telemetry_latest.ts_us"
)
# After a move: the newest sample of each series moved, the last received among equal times
# (rows of one move enter `telemetry` in the order received within equal times, and a row
# gets a greater rowid than every row already there). One step back in the series index per
# series; a window function over the staged rows took 1.3 times the CPU of the whole move.
_FOLD_LATEST = (
    "INSERT INTO telemetry_latest (thing_id, key, ts_us, num, value) "
    "SELECT t.thing_id, t.key, t.ts_us, t.num, t.value "
    "FROM (SELECT DISTINCT thing_id, key FROM telemetry_staged) AS s "
    "JOIN telemetry AS t ON t.rowid = (SELECT rowid FROM telemetry AS i "
    "WHERE i.thing_id = s.thing_id AND i.key = s.key ORDER BY i.ts_us DESC, i.rowid DESC LIMIT 1) "
    "WHERE true ON CONFLICT (thing_id, key) DO UPDATE SET "
    "ts_us = excluded.ts_us, num = excluded.num, value = excluded.value "
    "WHERE excluded.ts_us >= telemetry_latest.ts_us"
)
_STAGED_OF = "SELECT key, ts_us, num, value FROM telemetry_staged WHERE thing_id = ? ORDER BY rowid"
# A list of Thing ids is one parameter, a JSON array, so the statement is the same for every
# batch and needs no per-id placeholders.
_EXISTING = "SELECT id FROM things WHERE id IN (SELECT value FROM json_each(?))"
_TOUCH = (
    "UPDATE things SET last_seen_us = ? WHERE id IN (SELECT value FROM json_each(?)) "
    "AND (last_seen_us IS NULL OR last_seen_us < ?)"
)
# Bounded deletes of one series by row id, found through the series index (there is no index
# on ts_us alone: it cost a fifth of every insert; decision 41).
_DELETE_OLDEST = text(
    "DELETE FROM telemetry WHERE rowid IN (SELECT rowid FROM telemetry "
    "WHERE thing_id = :thing AND key = :key AND ts_us < :cutoff ORDER BY ts_us LIMIT :lim)"
)


def _add_samples(conn: Connection, rows: Sequence[Row]) -> None:
    sqlite_connection(conn).executemany(_STAGE, rows)


def _upsert_latest(conn: Connection, rows: Sequence[Row]) -> None:
    sqlite_connection(conn).executemany(_UPSERT, rows)


def _move_staged(conn: Connection) -> int:
    """Three statements, each all inside SQLite: the store runs this on a thread of its own
    (`Store.write_aside`), and sqlite3 releases the GIL for the whole of each statement.
    Inserting a few seconds of samples at once, sorted by series, dirties each series' last
    index page once, where each ingest commit would have dirtied it again; and each series'
    latest value is written once per move instead of once per commit (decision 43)."""
    raw = sqlite_connection(conn)
    moved = raw.execute(_MOVE).rowcount
    raw.execute(_FOLD_LATEST)
    raw.execute(_TRUNCATE_STAGED)
    return int(moved)


def _staged_samples(conn: Connection, thing_id: str) -> Iterable[Staged]:
    return sqlite_connection(conn).execute(_STAGED_OF, (thing_id,))


def _insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """An executemany: sqlite3 runs the one prepared statement for each row in C."""
    if rows:
        conn.execute(insert(table), list(rows))


def _insert_new(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    if not rows:
        return set()
    ids = [row["id"] for row in rows]
    taken = set(conn.execute(select(table.c.id).where(table.c.id.in_(ids))).scalars())
    new = [row for row in rows if row["id"] not in taken]
    _insert_rows(conn, table, new)
    return {row["id"] for row in new}


def _existing_things(conn: Connection, thing_ids: Sequence[str]) -> set[str]:
    cursor = sqlite_connection(conn).execute(_EXISTING, (orjson.dumps(list(thing_ids)).decode(),))
    return {row[0] for row in cursor}


def _touch_things(conn: Connection, thing_ids: Sequence[str], seen_us: int, stale_us: int) -> None:
    ids = orjson.dumps(list(thing_ids)).decode()
    sqlite_connection(conn).execute(_TOUCH, (seen_us, ids, stale_us))


# --- Things --------------------------------------------------------------------------------

# The write path reads every Thing it changes that is not in the store's cache.
_GET = (
    "SELECT id, kind, attributes, labels, links, description, revision, created_at, "
    "updated_at, connected, last_seen_us, quarantine, desired, reported, desired_meta, "
    "reported_meta, twin_version, pending_since, drifted_since FROM things WHERE id = ?"
)


def _json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def _get_thing(conn: Connection, thing_id: str) -> Thing | None:
    """By position, not through a mapping as `things_repo` does: building one per read cost
    a sixth of the write rate (bench/registry.py)."""
    r = sqlite_connection(conn).execute(_GET, (thing_id,)).fetchone()
    return None if r is None else _thing_at(r)


# The columns of `_GET`, in its order, as text: `_select_things` decodes the JSON itself.
_THING_COLUMNS = [
    type_coerce(things.c[name], Text)
    for name in _GET.removeprefix("SELECT ").split(" FROM ")[0].split(", ")
]


def _select_things(conn: Connection, query: Select[Any]) -> list[Thing]:
    """The Things a `select(things)` finds, decoded by position with orjson: SQLAlchemy's
    JSON columns and named rows cost more than SQLite's own work for a page of 1,000, on the
    reader threads that share the GIL with the event loop (and its writer)."""
    rows = conn.execute(query.with_only_columns(*_THING_COLUMNS)).fetchall()
    return [_thing_at(r) for r in rows]


def _thing_at(r: Sequence[Any]) -> Thing:
    last_seen_us = r[10]
    return Thing(
        id=r[0],
        kind=r[1],
        attributes=_json(r[2]),
        labels=_json(r[3]),
        links=_json(r[4]),
        description=_json(r[5]),
        revision=r[6],
        created_at=r[7],
        updated_at=r[8],
        connected=bool(r[9]),
        last_seen=None if last_seen_us is None else clock.to_rfc3339(last_seen_us),
        quarantine=_json(r[11]),
        twin=Twin(
            desired=_json(r[12]),
            reported=_json(r[13]),
            desired_meta=_json(r[14]),
            reported_meta=_json(r[15]),
            version=r[16],
            pending_since=r[17],
            drifted_since=r[18],
        ),
    )


_JSON_TWIN_COLUMNS = frozenset({"desired", "reported", "desired_meta", "reported_meta"})
# `things_repo`'s twin-only update, with its columns in the order of schema.TWIN_COLUMNS: it
# runs for every reported and desired change.
_UPDATE_TWIN = (
    "UPDATE things SET desired = ?, reported = ?, desired_meta = ?, reported_meta = ?, "
    "twin_version = ?, revision = ?, pending_since = ?, drifted_since = ?, updated_at = ? "
    "WHERE id = ?"
)


def _update_twin(conn: Connection, row: Mapping[str, Any]) -> None:
    values = [
        orjson.dumps(row[name]).decode() if name in _JSON_TWIN_COLUMNS else row[name]
        for name in TWIN_COLUMNS
    ]
    sqlite_connection(conn).execute(_UPDATE_TWIN, (*values, row["id"]))


# --- JSON documents (JSON1) ----------------------------------------------------------------

# Keys a JSON path can name as `$."key"` and that every serializer writes unescaped: SQLite
# matches path labels against the raw (still escaped) key text, and has no escape for '"'.
_PATH_SAFE_KEY = re.compile(r"[ !#-\[\]-~]*")
_NUMBERS = ("integer", "real")


class SqliteDocuments:
    """JSON1: json_type() tells JSON null ('null') from a missing key (NULL)."""

    def locate(self, col: Column, path: Sequence[str]) -> tuple[Column, Column]:
        """(json_type, SQL value) of the member at `path`; both NULL when it is missing."""
        if all(_PATH_SAFE_KEY.fullmatch(key) for key in path):
            json_path = "$" + "".join(f'."{key}"' for key in path)
            return func.json_type(col, literal(json_path)), func.json_extract(
                col, literal(json_path)
            )
        return self._walk(col, path, "type"), self._walk(col, path, "value")

    def _walk(self, col: Column, path: Sequence[str], member: str) -> Column:
        # json_each decodes keys, so any key works; a non-object on the way yields no row.
        source: Column = col
        joined: Any = None
        conditions = []
        for key in path:
            each = func.json_each(source).table_valued("key", "value", "type").alias()
            conditions.append(each.c.key == literal(key))
            joined = each if joined is None else joined.join(each, true())
            source = case((each.c.type == literal("object"), each.c.value), else_=literal("{}"))
        return select(each.c[member]).select_from(joined).where(*conditions).scalar_subquery()

    def exists(self, col: Column, path: Sequence[str]) -> ColumnElement[bool]:
        return self.locate(col, path)[0].is_not(None)

    def equals(self, col: Column, path: Sequence[str], value: Scalar) -> ColumnElement[bool]:
        return self.one_of(col, path, (value,))

    def one_of(
        self, col: Column, path: Sequence[str], values: Sequence[Scalar]
    ) -> ColumnElement[bool]:
        json_type, value = self.locate(col, path)
        strings = [v for v in values if isinstance(v, str)]
        numbers = [v for v in values if is_number(v)]
        constants = sorted({json.dumps(v) for v in values if v is None or isinstance(v, bool)})
        options = []
        if strings:
            options.append(and_(json_type == literal("text"), value.in_(strings)))
        if numbers:
            options.append(and_(json_type.in_(_NUMBERS), value.in_(numbers)))
        if constants:
            options.append(json_type.in_(constants))
        return two_valued(or_(*options))

    def order(
        self, col: Column, path: Sequence[str], op: str, value: int | float | str
    ) -> ColumnElement[bool]:
        json_type, member = self.locate(col, path)
        same_type = (
            json_type == literal("text") if isinstance(value, str) else json_type.in_(_NUMBERS)
        )
        return two_valued(and_(same_type, member.op(op, is_comparison=True)(literal(value))))

    def glob(self, col: Column, path: Sequence[str], pattern: str) -> ColumnElement[bool]:
        json_type, value = self.locate(col, path)
        return two_valued(and_(json_type == literal("text"), self.column_glob(value, pattern)))

    def column_glob(self, col: Column, pattern: str) -> ColumnElement[bool]:
        # GLOB is case-sensitive (LIKE is not, on SQLite); '[' would start a class.
        return col.op("GLOB", is_comparison=True)(literal(pattern.replace("[", "[[]")))

    def column_order(self, col: Column, op: str, value: str) -> ColumnElement[bool]:
        # SQLite compares text with BINARY collation: UTF-8 bytes, i.e. code point order.
        return col.op(op, is_comparison=True)(literal(value))


DIALECT = Dialect(
    name="sqlite",
    documents=SqliteDocuments(),
    upsert=_upsert,
    lock_migrations=_lock_migrations,
    stages_telemetry=True,
    add_samples=_add_samples,
    upsert_latest=_upsert_latest,
    move_staged=_move_staged,
    staged_samples=_staged_samples,
    existing_things=_existing_things,
    insert_rows=_insert_rows,
    insert_new=_insert_new,
    touch_things=_touch_things,
    delete_oldest=_DELETE_OLDEST,
    get_thing=_get_thing,
    update_twin=_update_twin,
    select_things=_select_things,
)
