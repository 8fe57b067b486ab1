"""Telemetry: batched ingest, queries with buckets and aggregates, latest values, retention.

Ingest is not journaled (brief, section 3: too much volume). A call to `ingest` is one
transaction whatever the number of messages in it, and returns once that has committed: the
MQTT adapter acknowledges QoS 1 messages only then, so an acknowledged sample is durable.
On SQLite it commits to a staging table; `run_compaction` moves the staged samples into the
series index in bulk, off the event loop (decision 43). Queries read both, so a sample is
queryable from its commit on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection

from iotas.controllers.periodic import Periodic
from iotas.domain import clock
from iotas.domain.errors import InvalidInput, NotFound
from iotas.domain.ids import check_thing_id
from iotas.domain.telemetry import (
    DAY_US,
    DEFAULT_LIMITS,
    Aggregate,
    Limits,
    Sample,
    parse_document,
)
from iotas.services.telemetry_feed import TelemetryFeed
from iotas.store import telemetry_repo
from iotas.store.store import Store, WriteTx
from iotas.store.telemetry_repo import Row

log = logging.getLogger("iotas.telemetry")

MAX_POINTS = 10_000  # per key and query
# Staged samples (SQLite) are moved into the series index once there are this many, or after
# this long. Each move costs about one page per series it touches, however many samples it
# carries; the staged ones are read without an index by queries, so they stay few.
STAGE_SAMPLES = 100_000
STAGE_SECONDS = 5.0


async def move_staged(store: Store) -> int:
    """Move the staged samples into the series index, where the store stages them."""
    if not store.dialect.stages_telemetry:
        return 0
    return await store.write_aside(telemetry_repo.move_staged)


@dataclass(frozen=True, slots=True)
class IngestResult:
    stored: int  # samples committed
    dropped: int  # samples refused because their Thing does not exist
    unknown: frozenset[str]  # those Things


@dataclass(frozen=True, slots=True)
class Series:
    """One key's answer: (ts_us, value) points, oldest first; `resume_us` if cut by the limit.

    For bucketed queries `ts_us` is the bucket start and the value the aggregate.
    """

    points: list[tuple[int, Any]]
    resume_us: int | None


def _decode(num: float | int | None, value: str | None) -> Any:
    return num if num is not None else None if value is None else orjson.loads(value)


class TelemetryService:
    def __init__(
        self,
        store: Store,
        *,
        limits: Limits = DEFAULT_LIMITS,
        last_seen_resolution_us: int = 1_000_000,
    ) -> None:
        self.store = store
        self.limits = limits
        # A Thing's row is rewritten for last_seen at most once per this long: a device that
        # sends ten messages a second should not rewrite its (wide) row ten times.
        self.last_seen_resolution_us = last_seen_resolution_us
        # Running totals for the operator (metrics will read them).
        self.stored_samples = 0
        self.dropped_samples = 0
        self.stage_samples = STAGE_SAMPLES
        self._staged = 0  # samples staged since the last move
        self._stage_full = asyncio.Event()
        # Moves of staged samples (SQLite), for the operator.
        self.moves = 0
        self.moved_samples = 0
        self.move_failures = 0
        self.last_move_s: float | None = None
        # Readers of committed telemetry (a Thing's `telemetry` event streams).
        self.feed = TelemetryFeed()

    async def ingest(self, batch: Sequence[tuple[str, Sequence[Sample]]]) -> IngestResult:
        """Store every sample of every (Thing id, samples) pair in one transaction.

        Samples of Things that do not exist (checked inside the transaction, so a Thing
        deleted meanwhile gets nothing) are dropped and counted. Returns after the commit.
        """
        by_thing: dict[str, list[Row]] = {}
        for thing_id, samples in batch:
            if samples:
                rows = by_thing.setdefault(thing_id, [])
                rows.extend((thing_id, *sample) for sample in samples)
        if not by_thing:
            return IngestResult(0, 0, frozenset())
        # Sorted: rows of `things` and `telemetry_latest` are then written in one order by
        # every transaction, so concurrent ingests cannot deadlock on each other's locks.
        ids = sorted(by_thing)
        resolution_us = max(self.last_seen_resolution_us, 0)

        def unit(tx: WriteTx) -> IngestResult:
            exist = telemetry_repo.existing_things(tx.conn, ids)
            kept = [tid for tid in ids if tid in exist]
            rows = [row for tid in kept for row in by_thing[tid]]
            telemetry_repo.add_samples(tx.conn, rows)
            telemetry_repo.touch_things(tx, kept, tx.ts_us - resolution_us)
            unknown = frozenset(ids) - exist
            return IngestResult(len(rows), sum(len(by_thing[t]) for t in unknown), unknown)

        result = await self.store.write(unit)
        if self.feed.watched:
            self.feed.committed(
                {tid: rows for tid, rows in by_thing.items() if tid not in result.unknown}
            )
        self.stored_samples += result.stored
        self.dropped_samples += result.dropped
        if self.store.dialect.stages_telemetry:
            self._staged += result.stored
            if self._staged >= self.stage_samples:
                self._stage_full.set()
        return result

    async def compact(self) -> int:
        """Move the staged samples into the series index now; the samples moved."""
        if not self.store.dialect.stages_telemetry:
            return 0  # nothing is staged
        staged, self._staged = self._staged, 0
        self._stage_full.clear()
        started = time.monotonic()
        try:
            moved = await move_staged(self.store)
        except BaseException as exc:
            self._staged += staged  # still staged: the next round moves them
            if isinstance(exc, Exception):
                self.move_failures += 1
            raise
        self.moves += 1
        self.moved_samples += moved
        self.last_move_s = time.monotonic() - started
        return moved

    def counters(self) -> dict[str, Any]:
        """Samples stored and dropped since start, and the moves of staged samples."""
        last = self.last_move_s
        return {
            "stored_samples": self.stored_samples,
            "dropped_samples": self.dropped_samples,
            "staged_samples": self._staged,  # since the last move began (SQLite)
            "moves": self.moves,
            "moved_samples": self.moved_samples,
            "move_failures": self.move_failures,
            "last_move_ms": None if last is None else round(last * 1000, 1),
        }

    def compaction(self, interval: float = STAGE_SECONDS) -> Periodic:
        """Moving staged samples, every `interval` seconds or as soon as `stage_samples` of
        them wait; the first round (after `interval`) also moves what a previous run left."""
        leftovers = True

        async def round_(_now_us: int) -> int:
            nonlocal leftovers
            if not (self._staged or leftovers):
                return 0
            leftovers = True  # until a move succeeds: they stay staged (and queryable)
            moved = await self.compact()
            leftovers = False
            return moved

        return Periodic(
            "telemetry-compaction",
            round_,
            interval=interval,
            first_delay=interval,
            wake=self._stage_full,
            log=log,
            failed="moving staged telemetry failed",
            cluster_wide=True,
        )

    async def run_compaction(self, interval: float = STAGE_SECONDS) -> None:
        """Until cancelled: the rounds of `compaction`."""
        await self.compaction(interval).run()

    async def ingest_document(self, thing_id: str, document: object) -> int:
        """Check and store one payload of one Thing (the HTTP route); the samples stored."""
        check_thing_id(thing_id)
        samples = parse_document(document, clock.now_us(), self.limits)
        result = await self.ingest([(thing_id, samples)])
        if result.unknown:
            raise NotFound(f"there is no Thing {thing_id!r}")
        return result.stored

    async def query(
        self,
        thing_id: str,
        keys: Sequence[str] | None,
        *,
        from_us: int,
        to_us: int | None,
        bucket_us: int | None = None,
        agg: Aggregate = "avg",
        limit: int = 1000,
        resume: Mapping[str, int] | None = None,
    ) -> dict[str, Series]:
        """Samples (or buckets) of each key in [from, to), oldest first, `limit` per key.

        `keys` None means every key the Thing has sent. `resume` maps keys to where a
        previous, truncated answer left off; only those keys are read, from there.
        """
        check_thing_id(thing_id)
        if to_us is not None and to_us <= from_us:
            raise InvalidInput("from must be before to", field="from")
        if not 1 <= limit <= MAX_POINTS:
            raise InvalidInput(f"limit must be 1 to {MAX_POINTS}", field="limit")

        def read(conn: Connection) -> dict[str, Series]:
            if not telemetry_repo.existing_things(conn, [thing_id]):
                raise NotFound(f"there is no Thing {thing_id!r}")
            if resume is not None:
                starts = dict(resume)
            else:
                wanted = telemetry_repo.keys(conn, thing_id) if keys is None else keys
                starts = dict.fromkeys(wanted, from_us)
            answer: dict[str, Series] = {}
            for key, start in starts.items():
                if bucket_us is None:
                    found = telemetry_repo.raw_samples(conn, thing_id, key, start, to_us, limit)
                    step = 1
                else:
                    found = telemetry_repo.buckets(
                        conn, thing_id, key, start, to_us, bucket_us, agg, limit
                    )
                    step = bucket_us
                points = [(ts, _decode(num, value)) for ts, num, value in found]
                # A full page may have more behind it; the next starts just past its end.
                resume_us = points[-1][0] + step if len(points) == limit else None
                answer[key] = Series(points, resume_us)
            return answer

        return await self.store.read(read)

    async def latest(self, thing_id: str) -> dict[str, tuple[int, Any]]:
        """The newest (ts_us, value) of each key of the Thing."""
        check_thing_id(thing_id)

        def read(conn: Connection) -> dict[str, tuple[int, Any]]:
            if not telemetry_repo.existing_things(conn, [thing_id]):
                raise NotFound(f"there is no Thing {thing_id!r}")
            rows = telemetry_repo.latest(conn, thing_id)
            return {key: (ts, _decode(num, value)) for key, ts, num, value in rows}

        return await self.store.read(read)


class TelemetryRetention:
    """Deletes samples older than the retention period, a bounded batch per transaction.

    Each batch is its own write, so other writers (ingest, twins) get in between batches
    and none waits behind a long delete. `retention_days` 0 keeps everything.
    """

    def __init__(self, store: Store, *, retention_days: float = 30, batch_size: int = 5000) -> None:
        if retention_days < 0:
            raise ValueError("retention_days must be 0 (keep forever) or more")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.store = store
        self.retention_us = round(retention_days * DAY_US)
        self.batch_size = batch_size

    async def run_once(self, now_us: int) -> int:
        """Delete everything older than now minus the retention period; the rows deleted."""
        if self.retention_us == 0:
            return 0
        cutoff = now_us - self.retention_us
        await move_staged(self.store)  # staged samples are deleted from the series index
        total = 0
        after: telemetry_repo.Series | None = None
        while True:
            step = await self.store.write(self._expire(cutoff, after))
            total += step.deleted
            if step.done:
                return total
            after = step.after
            await asyncio.sleep(0)  # a turn of the loop for the writes queued meanwhile

    def _expire(
        self, cutoff: int, after: telemetry_repo.Series | None
    ) -> Callable[[WriteTx], telemetry_repo.Expired]:
        """One bounded step of `run_once`, as a write unit."""
        return lambda tx: telemetry_repo.delete_older_than(tx.conn, cutoff, self.batch_size, after)

    def controller(self, interval: float = 60.0) -> Periodic:
        """Once now, then every `interval` seconds; once per cluster."""
        return Periodic(
            "telemetry-retention",
            self.run_once,
            interval=interval,
            log=log,
            done="telemetry retention deleted %d samples",
            failed="telemetry retention failed",
            cluster_wide=True,
        )

    async def run(self, interval: float = 60.0) -> None:
        """Run until cancelled: once now, then every `interval` seconds."""
        await self.controller(interval).run()
