"""Transactions: the one place where iotas begins and commits.

Services hand the store a *unit of work*: a plain function over a SQLAlchemy Core
`Connection`, which is the whole transaction. Repositories are plain functions too, so one
code base serves both databases:

- SQLite (embedded): reads run on threads with the stdlib driver, one hop per unit rather
  than one per statement. Writes go through a single writer connection that commits in
  groups: the units waiting when a batch starts share one transaction, each inside its own
  SAVEPOINT, so one failing unit is rolled back alone. SQLite has one writer at a time
  anyway; grouping turns its lock and commit into one per batch instead of one per change.
  A long bulk write without events (`write_aside`) has the writer to itself on a thread.
- PostgreSQL: units run through `AsyncConnection.run_sync` on asyncpg; concurrency is real.

Every write transaction first locks the journal head row. That serialises writers, so the
seq numbers they take are gap-free and in commit order (a reader that has seen seq N never
later finds an N-1 it missed), and an event's time is never before its predecessor's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import threading
import time
from collections import ChainMap
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, RootTransaction, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from iotas.domain import clock
from iotas.domain.errors import NotFound
from iotas.domain.journal import THING, THING_CREATED, Event, apply, chain_hash
from iotas.domain.merge_patch import JSONObject
from iotas.domain.things import Thing
from iotas.store import things_repo
from iotas.store.dialects import Dialect, postgresql, sqlite
from iotas.store.dialects.sqlite import sqlite_connection
from iotas.store.schema import journal_head

T = TypeVar("T")
log = logging.getLogger(__name__)
MAX_BATCH = 256
# Things whose committed state the embedded store keeps in memory (about 2 KB each).
CACHE_SIZE = 20_000
# Seconds after which the PostgreSQL writer gives its idle connection back to the pool.
WRITER_IDLE_S = 1.0
# What a store calls after each commit that journaled events: the last seq, and the types of
# the events it committed (so followers of other types need not read; `services.follow`).
OnCommit = Callable[[int, frozenset[str]], None]


@dataclass(slots=True)
class Head:
    seq: int
    hash: str
    ts_us: int


@dataclass(slots=True)
class WriteTx:
    """An open write transaction; `record` appends an event to the journal within it.

    `known` is what the store already knows of Things' current state (the embedded store's
    cache of committed state plus earlier units of the same batch; on PostgreSQL only the
    latter), or None. Units read Things with `thing()` and change them with `change()`,
    which tells the batch what it wrote, so that the cache only ever learns committed state.
    `pending` holds the unit's events; the store writes a batch's events at its end.
    """

    conn: Connection
    head: Head
    ts_us: int
    pending: list[dict[str, object]] = field(default_factory=list)
    known: Mapping[str, Thing | None] | None = None
    staged: dict[str, Thing | None] = field(default_factory=dict)

    def thing(self, thing_id: str) -> Thing | None:
        if thing_id in self.staged:
            return self.staged[thing_id]
        if self.known is not None and thing_id in self.known:
            return self.known[thing_id]
        return things_repo.get(self.conn, thing_id)

    def existing(self, thing_id: str) -> Thing:
        """`thing`, for a unit that needs the Thing to exist (404 otherwise)."""
        thing = self.thing(thing_id)
        if thing is None:
            raise NotFound(f"there is no Thing {thing_id!r}")
        return thing

    def wrote(self, thing_id: str, thing: Thing | None) -> None:
        """Tell the cache the unit stored this state (None: deleted) for the Thing. Only for
        columns outside the journal (`last_seen`); journaled state changes through `change`,
        which calls this itself."""
        self.staged[thing_id] = thing

    @property
    def now(self) -> str:
        return clock.to_rfc3339(self.ts_us)

    def record(
        self,
        record_id: str,
        type_: str,
        *,
        actor: str,
        cause: str | None,
        patch: JSONObject | None,
        before: JSONObject | None = None,
        kind: str = THING,
    ) -> Event:
        """Append an event to the journal (a Thing's unless `kind` says otherwise). Units
        change Things through `change`, which calls this; a token, claim or binding's own
        unit calls it beside the write of its row."""
        event = Event(
            seq=self.head.seq + 1,
            ts=self.now,
            record_id=record_id,
            type=type_,
            actor=actor,
            cause=cause,
            patch=patch,
            before=before,
            kind=kind,
        )
        body = event.canonical()
        digest = chain_hash(self.head.hash, body)
        self.pending.append(
            {
                "seq": event.seq,
                "ts_us": self.ts_us,
                "kind": kind,
                "record_id": record_id,
                "type": type_,
                "body": body.decode(),
                "hash": digest,
            }
        )
        self.head = Head(event.seq, digest, self.ts_us)
        return event

    def change(
        self,
        state: Thing | None,
        thing_id: str,
        type_: str,
        *,
        actor: str,
        cause: str | None,
        patch: JSONObject | None,
        before: JSONObject | None = None,
    ) -> Thing | None:
        """The change path of a Thing: journal the event, fold it into `state` (the Thing as
        the unit read it, None when it does not exist yet), write the result and tell the
        cache. Returns the Thing after the event (None: deleted). Nothing else writes a
        Thing's journaled state."""
        event = self.record(thing_id, type_, actor=actor, cause=cause, patch=patch, before=before)
        after = apply(state, event)
        if after is state:  # an event that changes no state (a Thing's own event, say)
            return after
        if state is None:
            assert after is not None
            things_repo.insert_thing(self.conn, after)
        elif after is None:
            things_repo.delete_thing(self.conn, thing_id)
        else:
            things_repo.update_thing(self.conn, state, after)
        self.wrote(thing_id, after)
        return after

    def create_all(
        self, records: Sequence[tuple[str, JSONObject]], *, actor: str, cause: str | None
    ) -> list[Thing]:
        """`change` with a `thing_created` event for each of several Things (distinct ids),
        their rows written a statement per table rather than per Thing. A Thing whose id is
        taken is left out, with no event; returns the Things created, in order."""
        candidates = []
        patches = dict(records)
        for thing_id, record in records:
            if self._known_state(thing_id) is not None:
                continue  # known to exist: no need to ask the database
            # The Thing its creation event makes (which does not depend on the event's seq).
            draft = Event(0, self.now, thing_id, THING_CREATED, actor, cause, record)
            thing = apply(None, draft)
            assert thing is not None
            candidates.append(thing)
        inserted = things_repo.insert_new_things(self.conn, candidates)
        created = [thing for thing in candidates if thing.id in inserted]
        for thing in created:
            patch = patches[thing.id]
            self.record(thing.id, THING_CREATED, actor=actor, cause=cause, patch=patch)
            self.wrote(thing.id, thing)
        return created

    def touch(self, thing_ids: list[str], seen_us: int) -> None:
        """Move `last_seen` of these Things forward (not journaled: every message does it),
        and the states the cache holds of them with it."""
        things_repo.touch(self.conn, thing_ids, seen_us)
        self.saw(thing_ids, seen_us)

    def saw(self, thing_ids: Sequence[str], seen_us: int, stale_us: int | None = None) -> None:
        """What the unit and the cache hold of these Things: `last_seen` moves to `seen_us`
        where it is unset or before `stale_us` (default: `seen_us`), as the rows did."""
        # RFC 3339 strings of fixed width compare as the instants do.
        seen = clock.to_rfc3339(seen_us)
        stale = seen if stale_us is None else clock.to_rfc3339(stale_us)
        for thing_id in thing_ids:
            known = self._known_state(thing_id)
            if known is not None and (known.last_seen is None or known.last_seen < stale):
                self.wrote(thing_id, replace(known, last_seen=seen))

    def _known_state(self, thing_id: str) -> Thing | None:
        """What the unit or the cache holds of the Thing, without asking the database."""
        if thing_id in self.staged:
            return self.staged[thing_id]
        if self.known is not None:
            return self.known.get(thing_id)
        return None


def lock_head(conn: Connection) -> Head:
    row = conn.execute(
        select(journal_head.c.seq, journal_head.c.hash, journal_head.c.ts_us)
        .where(journal_head.c.id == 1)
        .with_for_update()
    ).one()
    return Head(row.seq, row.hash, row.ts_us)


class Store:
    """The contract; `SqliteStore` and `PostgresStore` implement it."""

    # What differs in the database under it; ask its capabilities, not its name.
    dialect: Dialect

    async def read(self, unit: Callable[[Connection], T]) -> T:
        raise NotImplementedError

    async def write(self, unit: Callable[[WriteTx], T]) -> T:
        raise NotImplementedError

    async def write_aside(self, unit: Callable[[Connection], T]) -> T:
        """A long bulk write with no journal events (moving rows in bulk), kept off the event
        loop where the store would otherwise run it there. Here: an ordinary write."""
        return await self.write(lambda tx: unit(tx.conn))

    async def dispose(self) -> None:
        raise NotImplementedError


class PostgresStore(Store):
    """Units run on asyncpg through `run_sync`. Writes are committed in groups, as on SQLite:
    one writer task, on a connection of its own, takes the units waiting when it starts a
    batch and runs them in one transaction (see `_run_pg_batch`) that commits once, so the
    head lock, the journal's insert and the commit's flush to disk are paid once per batch,
    not once per change. Several nodes each have their own writer; the head row lock orders
    them."""

    dialect = postgresql.DIALECT

    def __init__(self, engine: AsyncEngine, *, on_commit: OnCommit) -> None:
        self.engine = engine
        self._on_commit = on_commit
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    async def read(self, unit: Callable[[Connection], T]) -> T:
        # Without BEGIN and ROLLBACK: two round trips of the three a one-query read cost.
        # Nothing is lost: at PostgreSQL's READ COMMITTED each statement takes its own
        # snapshot inside a transaction too, and a read unit writes nothing.
        async with self.engine.connect() as conn:
            autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
            return await autocommit.run_sync(unit)

    async def write(self, unit: Callable[[WriteTx], T]) -> T:
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="iotas-pg-writer")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(unit, future))
        return await future

    async def _write_loop(self) -> None:
        # The writer keeps one connection from batch to batch: taking it from the pool for
        # each batch cost a round trip (the pool's ping) and the pool's own work every time.
        # After a pause it goes back to the pool, so the next batch gets a pinged one (a
        # database restarted meanwhile fails no batch).
        conn: AsyncConnection | None = None
        idle_since = time.monotonic()
        try:
            while True:
                batch = [await self._queue.get()]
                while len(batch) < MAX_BATCH and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                units = [job.unit for job in batch]
                try:
                    if conn is not None and time.monotonic() - idle_since > WRITER_IDLE_S:
                        await conn.close()
                        conn = None
                    if conn is None:
                        conn = await self.engine.connect()
                    outcomes, last_seq, types = await conn.run_sync(_run_pg_batch, units)
                except Exception as exc:  # no connection: every unit in the batch failed
                    outcomes, last_seq, types = [(False, exc) for _ in batch], None, frozenset()
                if conn is not None and conn.invalidated:  # lost: the next batch reconnects
                    await conn.close()
                    conn = None
                idle_since = time.monotonic()
                for job, (ok, value) in zip(batch, outcomes, strict=True):
                    _settle(job.future, ok, value)
                    self._queue.task_done()
                if last_seq is not None:
                    self._on_commit(last_seq, types)
        finally:
            if conn is not None:
                await conn.close()

    async def dispose(self) -> None:
        if self._writer is not None and not self._writer.done():
            await self._queue.join()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self.engine.dispose()


_Outcomes = list[tuple[bool, Any]]


def _run_pg_batch(
    conn: Connection, units: list[Callable[[WriteTx], Any]]
) -> tuple[_Outcomes, int | None, frozenset[str]]:
    """One transaction for a batch of units on PostgreSQL.

    Optimistic: the batch runs first without savepoints, which cost two round trips per unit.
    If a unit fails, that attempt is rolled back and the batch runs again with each unit in
    its own savepoint, so only the failing unit is undone. Units are functions of the
    database state, so running one twice is safe."""
    try:
        return _attempt(conn, units, savepoints=False)
    except _Retry:
        return _attempt(conn, units, savepoints=True)


class _Retry(Exception):
    """A unit failed in a batch run without savepoints."""


def _attempt(
    conn: Connection, units: list[Callable[[WriteTx], Any]], *, savepoints: bool
) -> tuple[_Outcomes, int | None, frozenset[str]]:
    """The batch's events are written at its end with the new head, in one statement
    (`postgresql.append_journal`), as the SQLite store does; a later unit of the batch reads
    the Things an earlier one wrote from what that unit staged, not from the database."""
    outcomes: list[tuple[bool, Any]] = []
    try:
        with conn.begin():
            head = start = lock_head(conn)
            events: list[dict[str, object]] = []
            staged: dict[str, Thing | None] = {}
            for unit in units:
                tx = WriteTx(conn, head, max(clock.now_us(), head.ts_us), known=staged)
                savepoint = conn.begin_nested() if savepoints else None
                try:
                    result = unit(tx)
                except Exception as exc:
                    if savepoint is None:
                        if len(units) > 1:
                            raise _Retry from exc
                        raise  # the only unit: the whole (rolled back) batch is its failure
                    savepoint.rollback()  # the unit's own failure: only it is undone
                    outcomes.append((False, exc))
                    continue
                if savepoint is not None:
                    savepoint.commit()
                events += tx.pending
                staged.update(tx.staged)
                head = tx.head
                outcomes.append((True, result))
            if head.seq == start.seq:
                return outcomes, None, frozenset()
            postgresql.append_journal(conn, events, head.seq, head.hash, head.ts_us)
    except _Retry:
        raise
    except Exception as exc:  # the batch could not commit: every unit in it failed
        return [(False, exc) for _ in units], None, frozenset()
    return outcomes, head.seq, _types(events)


def _types(events: list[dict[str, Any]]) -> frozenset[str]:
    return frozenset(str(e["type"]) for e in events)


@dataclass(slots=True)
class _Job:
    unit: Callable[[WriteTx], Any]
    future: asyncio.Future[Any]


class SqliteStore(Store):
    dialect = sqlite.DIALECT

    def __init__(
        self,
        engine: Engine,
        *,
        on_commit: OnCommit,
        lock_fd: int | None = None,
        readers: int = 4,
        durability: str = "normal",
    ) -> None:
        self.engine = engine
        self._synchronous = sqlite.SYNCHRONOUS[durability]
        self._lock_fd = lock_fd
        self._on_commit = on_commit
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="iotas-sqlite-read")
        self._writer: Connection | None = None
        self._queued: list[_Job] = []
        # The writer in use on its thread: a batch's commit, or a `write_aside` unit. Batches
        # queue meanwhile; the one thread keeps the connection to one user at a time.
        self._busy: asyncio.Future[Any] | None = None
        self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="iotas-sqlite-writer")
        # Committed state of recently written Things. Sound because this process is the only
        # writer of the file (see `engine.lock_data_file`) and it is updated after commit only.
        self._known: dict[str, Thing | None] = {}
        # Checkpoints run here, not in the writer's commits (see `dialects.sqlite.CHECKPOINT`).
        self._stop_checkpoints = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="iotas-sqlite-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """Copy the WAL into the database file every `CHECKPOINT_INTERVAL`, from a connection
        of this thread: sqlite3 releases the GIL for the whole checkpoint, so the copy and its
        fsync run beside the event loop instead of inside a commit on it."""
        with self.engine.connect() as conn:
            raw = sqlite_connection(conn)
            while not self._stop_checkpoints.wait(sqlite.CHECKPOINT_INTERVAL):
                try:
                    raw.execute(sqlite.CHECKPOINT).fetchall()
                except Exception:  # the file away for a moment: the next round tries again
                    log.exception("sqlite: checkpoint failed")

    async def read(self, unit: Callable[[Connection], T]) -> T:
        def run() -> T:
            with self.engine.connect() as conn, conn.begin():
                return unit(conn)

        return await asyncio.wrap_future(self._readers.submit(run))

    async def write(self, unit: Callable[[WriteTx], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if not self._queued:
            # Every write that arrives before this callback runs joins the same batch.
            loop.call_soon(self._run_queued)
        self._queued.append(_Job(unit, future))
        return await future

    async def write_aside(self, unit: Callable[[Connection], T]) -> T:
        """Run `unit` in one transaction of the writer connection, on the writer's thread;
        writes queue until it commits. For a few statements that each do much work inside
        SQLite (sqlite3 releases the GIL for the whole of each), so the event loop goes on
        (parsing the next messages) on the other core meanwhile. One at a time."""
        while self._busy is not None:
            await asyncio.wait([self._busy])
        writer = self._writer = self._writer or self._open_writer()

        def run() -> T:
            sqlite_connection(writer).execute(sqlite.BEGIN_IMMEDIATE)
            with writer.begin():
                return unit(writer)

        aside = self._busy = asyncio.wrap_future(self._writer_thread.submit(run))
        aside.add_done_callback(self._writer_free)
        # Shielded: a cancelled caller must not free the writer while the thread still uses it.
        return await asyncio.shield(aside)

    def _writer_free(self, _done: asyncio.Future[Any]) -> None:
        self._busy = None
        if self._queued:
            self._run_queued()

    def _run_queued(self) -> None:
        # The units run on the event loop thread, on purpose: a writer thread would trade the
        # GIL with the loop on every statement (sqlite3 releases it around each call), and
        # that convoy cost more than the few milliseconds a batch holds the loop. The commit
        # goes to the writer's thread: it is one call that releases the GIL throughout (and
        # syncs the WAL with `durability=full`), so the loop reads and parses the requests of
        # the next batch meanwhile, and that batch starts when the commit is done.
        if self._busy is not None or not self._queued:
            return  # `_writer_free` runs the queue; or it ran it before this turn came
        batch, self._queued = self._queued[:MAX_BATCH], self._queued[MAX_BATCH:]
        writer = self._writer = self._writer or self._open_writer()
        ran = _run_batch(writer, [job.unit for job in batch], self._known)
        if ran.transaction is None:  # nothing to commit: every unit failed with the batch
            self._settle_batch(batch, ran)
            if self._queued:
                asyncio.get_running_loop().call_soon(self._run_queued)
            return
        committing = self._busy = asyncio.wrap_future(
            self._writer_thread.submit(_commit, ran.transaction)
        )
        committing.add_done_callback(lambda done: self._committed(done, batch, ran))

    def _committed(self, done: asyncio.Future[None], batch: list[_Job], ran: _Ran) -> None:
        failure = done.exception()
        if failure is not None:  # the commit failed: no unit of the batch stands
            ran = _Ran([(False, failure) for _ in batch], None, {}, frozenset(), None)
        self._settle_batch(batch, ran)
        self._writer_free(done)

    def _settle_batch(self, batch: list[_Job], ran: _Ran) -> None:
        self._remember(ran.staged)
        for job, (ok, value) in zip(batch, ran.outcomes, strict=True):
            _settle(job.future, ok, value)
        if ran.last_seq is not None:
            self._on_commit(ran.last_seq, ran.types)

    def _open_writer(self) -> Connection:
        writer = self.engine.connect()
        raw = sqlite_connection(writer)
        for pragma in (*sqlite.WRITER_PRAGMAS, self._synchronous):
            raw.execute(pragma)
        return writer.execution_options(**{sqlite.IMMEDIATE: sqlite.SELF_BEGUN})

    def _remember(self, staged: dict[str, Thing | None]) -> None:
        """Keep the newest committed states, the most recently written last; past the
        limit, the least recently written quarter goes (not all of it: a fleet whose active
        Things outnumber the cache would otherwise start cold again and again)."""
        known = self._known
        for thing_id, thing in staged.items():
            known.pop(thing_id, None)
            known[thing_id] = thing
        if len(known) > CACHE_SIZE:
            for thing_id in list(itertools.islice(known, len(known) - CACHE_SIZE * 3 // 4)):
                del known[thing_id]

    async def dispose(self) -> None:
        while self._busy is not None or self._queued:  # finish what was accepted first
            if self._busy is not None:
                await asyncio.wait([self._busy])
            else:
                self._run_queued()
        if self._writer is not None:
            self._writer.close()
        self._stop_checkpoints.set()
        await asyncio.to_thread(self._checkpointer.join)
        self._writer_thread.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self.engine.dispose()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None


_JOURNAL_INSERT = (
    "INSERT INTO journal (seq, ts_us, kind, record_id, type, body, hash)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(slots=True)
class _Ran:
    """A batch run on the SQLite writer: each unit's outcome, the last seq it journaled (None:
    none), the Things' states it wrote, its events' types, and its transaction, still open
    (None: nothing to commit, every unit failed with the batch)."""

    outcomes: _Outcomes
    last_seq: int | None
    staged: dict[str, Thing | None]
    types: frozenset[str]
    transaction: RootTransaction | None


def _run_batch(
    conn: Connection, units: list[Callable[[WriteTx], Any]], known: dict[str, Thing | None]
) -> _Ran:
    """Run units in one transaction, each in a savepoint so a failing one is undone alone,
    and leave the transaction open for `_commit`.

    The batch's own statements (begin, savepoints, the head, the journal rows) go to the
    sqlite3 connection directly: they run for every change, and SQLAlchemy's per-statement
    work was a large part of their cost. The units themselves use the shared repositories.
    """
    outcomes: _Outcomes = []
    raw = sqlite_connection(conn)
    try:
        raw.execute(sqlite.BEGIN_IMMEDIATE)
        transaction = conn.begin()  # SQLAlchemy's side only (`sqlite.SELF_BEGUN`)
    except Exception as exc:  # the batch could not begin: every unit in it failed
        if raw.in_transaction:
            raw.execute("ROLLBACK")
        return _Ran([(False, exc) for _ in units], None, {}, frozenset(), None)
    try:
        seq, digest, ts_us = raw.execute(
            "SELECT seq, hash, ts_us FROM journal_head WHERE id = 1"
        ).fetchone()
        head = start = Head(seq, digest, ts_us)
        events: list[dict[str, Any]] = []
        staged: dict[str, Thing | None] = {}
        view = ChainMap(staged, known)
        for unit in units:
            tx = WriteTx(conn, head, max(clock.now_us(), head.ts_us), known=view)
            raw.execute("SAVEPOINT unit")
            try:
                result = unit(tx)
            except Exception as exc:  # the unit's own failure: only it is undone
                raw.execute("ROLLBACK TO unit")
                raw.execute("RELEASE unit")
                outcomes.append((False, exc))
                continue
            raw.execute("RELEASE unit")
            events += tx.pending
            staged.update(tx.staged)
            head = tx.head
            outcomes.append((True, result))
        if head.seq == start.seq:
            return _Ran(outcomes, None, staged, frozenset(), transaction)
        raw.executemany(
            _JOURNAL_INSERT,
            [
                (
                    e["seq"],
                    e["ts_us"],
                    e["kind"],
                    e["record_id"],
                    e["type"],
                    e["body"],
                    e["hash"],
                )
                for e in events
            ],
        )
        raw.execute(
            "UPDATE journal_head SET seq = ?, hash = ?, ts_us = ? WHERE id = 1",
            (head.seq, head.hash, head.ts_us),
        )
    except Exception as exc:  # the batch could not be written: every unit in it failed
        transaction.rollback()
        return _Ran([(False, exc) for _ in units], None, {}, frozenset(), None)
    return _Ran(outcomes, head.seq, staged, _types(events), transaction)


def _commit(transaction: RootTransaction) -> None:
    """Commit a batch (on the writer's thread); on failure roll it back, so the writer is
    ready for the next."""
    try:
        transaction.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            transaction.rollback()
        raise


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
