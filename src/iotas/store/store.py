"""Transactions: the one place where iotas begins and commits.

A write transaction first locks the journal head row. That serialises writers for their whole
transaction, so the seq numbers they take are gap-free and in commit order (a reader that has
seen seq N will never later find an N-1 it missed), and every event's time is at least its
predecessor's. SQLite locks the whole file anyway; in one process we queue writers on an
asyncio lock rather than on SQLite's busy timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from iotas.domain import clock
from iotas.domain.journal import Event, chain_hash
from iotas.domain.merge_patch import JSONObject
from iotas.store.schema import journal, journal_head


@dataclass(slots=True)
class Head:
    seq: int
    hash: str
    ts_us: int


@dataclass(slots=True)
class WriteTx:
    """An open write transaction; `record` appends an event to the journal with it."""

    conn: AsyncConnection
    head: Head
    ts_us: int
    pending: list[dict[str, object]] = field(default_factory=list)

    @property
    def now(self) -> str:
        return clock.to_rfc3339(self.ts_us)

    def record(
        self,
        thing_id: str,
        type_: str,
        *,
        actor: str,
        cause: str | None,
        patch: JSONObject | None,
        before: JSONObject | None = None,
    ) -> Event:
        event = Event(
            seq=self.head.seq + 1,
            ts=self.now,
            thing_id=thing_id,
            type=type_,
            actor=actor,
            cause=cause,
            patch=patch,
            before=before,
        )
        body = event.canonical()
        digest = chain_hash(self.head.hash, body)
        self.pending.append(
            {
                "seq": event.seq,
                "ts_us": self.ts_us,
                "thing_id": thing_id,
                "type": type_,
                "body": body.decode(),
                "hash": digest,
            }
        )
        self.head = Head(event.seq, digest, self.ts_us)
        return event


class Store:
    def __init__(
        self, engine: AsyncEngine, *, on_commit: Callable[[int], None] | None = None
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._on_commit = on_commit
        self._local_writer = asyncio.Lock() if self.dialect == "sqlite" else None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[WriteTx]:
        if self._local_writer is None:
            async with self._write() as tx:
                yield tx
        else:
            async with self._local_writer, self._write() as tx:
                yield tx

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[WriteTx]:
        committed_seq = None
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(sqlite_immediate=True)
            async with conn.begin():
                row = (
                    await conn.execute(
                        select(journal_head.c.seq, journal_head.c.hash, journal_head.c.ts_us)
                        .where(journal_head.c.id == 1)
                        .with_for_update()
                    )
                ).one()
                head = Head(row.seq, row.hash, row.ts_us)
                tx = WriteTx(conn, head, max(clock.now_us(), head.ts_us))
                yield tx
                if tx.pending:
                    await conn.execute(insert(journal), tx.pending)
                    await conn.execute(
                        update(journal_head)
                        .where(journal_head.c.id == 1)
                        .values(seq=tx.head.seq, hash=tx.head.hash, ts_us=tx.head.ts_us)
                    )
                    committed_seq = tx.head.seq
        if committed_seq is not None and self._on_commit is not None:
            self._on_commit(committed_seq)

    async def dispose(self) -> None:
        await self.engine.dispose()
