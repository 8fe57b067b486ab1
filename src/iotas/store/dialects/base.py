"""The capabilities a dialect module provides, and what its implementations share."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Boolean, ColumnElement, Connection, Executable, Table, false, func
from sqlalchemy.sql.elements import TextClause

from iotas.domain.query import Scalar
from iotas.domain.things import Thing

# A telemetry sample with its Thing in front: (thing_id, key, ts_us, num, value).
Row = tuple[str, str, int, float | None, str | None]
# A staged sample of one Thing: (key, ts_us, num, value).
Staged = tuple[str, int, float | None, str | None]
Column = ColumnElement[Any]


class DocumentSql(Protocol):
    """How one dialect reads a JSON column at a path of object keys (the query compiler's
    half that differs; `iotas.store.query_sql` is the other)."""

    def exists(self, col: Column, path: Sequence[str]) -> ColumnElement[bool]: ...
    def equals(self, col: Column, path: Sequence[str], value: Scalar) -> ColumnElement[bool]: ...
    def one_of(
        self, col: Column, path: Sequence[str], values: Sequence[Scalar]
    ) -> ColumnElement[bool]: ...
    def order(
        self, col: Column, path: Sequence[str], op: str, value: int | float | str
    ) -> ColumnElement[bool]: ...
    def glob(self, col: Column, path: Sequence[str], pattern: str) -> ColumnElement[bool]: ...
    def column_glob(self, col: Column, pattern: str) -> ColumnElement[bool]: ...
    def column_order(self, col: Column, op: str, value: str) -> ColumnElement[bool]: ...


@dataclass(frozen=True, slots=True, eq=False)
class Dialect:
    """What differs between the databases iotas runs on, as capabilities and as the few
    statements that must stay raw. Code outside `iotas.store.dialects` asks these, never a
    dialect's name (`name` is for messages). Each field's implementation is in the dialect's
    own module; to add a difference, add a field here and fill it in each of them.
    """

    name: str
    # Reading JSON documents, for the query compiler.
    documents: DocumentSql
    # `INSERT ... ON CONFLICT (keys) DO UPDATE SET update`: (table, values, keys, update).
    upsert: Callable[[Table, Mapping[str, Any], Sequence[Any], Mapping[str, Any]], Executable]
    # Take the lock that keeps two nodes from migrating at once, inside the transaction.
    lock_migrations: Callable[[Connection], None]

    # Ingest appends samples to `telemetry_staged`, and `move_staged` moves them into the
    # series index in bulk (decision 43); queries then read both tables. Without it, samples
    # go into `telemetry` and their latest values into `telemetry_latest` at once.
    stages_telemetry: bool
    # Store samples (staged, or inserted with their latest values).
    add_samples: Callable[[Connection, Sequence[Row]], None]
    # Upsert latest values, given at most one row per (Thing, key), in that order.
    upsert_latest: Callable[[Connection, Sequence[Row]], None]
    # Move the staged samples (see `stages_telemetry`); the samples moved.
    move_staged: Callable[[Connection], int]
    # The staged samples of one Thing, in the order received.
    staged_samples: Callable[[Connection, str], Iterable[Staged]]
    # Which of these Thing ids exist.
    existing_things: Callable[[Connection, Sequence[str]], set[str]]
    # last_seen_us = seen for these Things where it is unset or before stale: (ids, seen, stale).
    touch_things: Callable[[Connection, Sequence[str], int, int], None]
    # Delete up to :lim samples of one series (:thing, :key) before :cutoff, oldest first.
    delete_oldest: TextClause

    # Shortcuts past SQLAlchemy for statements run on every change, where its per-statement
    # work cost more than the database's own; None: the portable statement serves.
    get_thing: Callable[[Connection, str], Thing | None] | None = None
    # Write the twin-only columns of a row from `things_repo` (a twin change).
    update_twin: Callable[[Connection, Mapping[str, Any]], None] | None = None
    # Each row of an executemany is a round trip to a server: many rows are better written
    # by one statement (a CASE on their keys) although SQLAlchemy compiles it every time.
    round_trips: bool = False


def two_valued(expr: ColumnElement[bool]) -> ColumnElement[bool]:
    """NULL (a missing value somewhere in `expr`) becomes false."""
    return func.coalesce(expr, false(), type_=Boolean)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def newest_per_series(rows: Iterable[Row]) -> list[Row]:
    """The newest row of each (Thing, key), the last received among equal times, in
    (Thing, key) order: concurrent upserts then lock shared rows in the same order."""
    newest: dict[tuple[str, str], Row] = {}
    for row in rows:
        seen = newest.get((row[0], row[1]))
        if seen is None or row[2] >= seen[2]:
            newest[(row[0], row[1])] = row
    return [newest[pair] for pair in sorted(newest)]
