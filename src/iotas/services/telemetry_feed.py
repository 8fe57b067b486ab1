"""Telemetry as it is committed, for live readers (a Thing's `telemetry` event streams).

Telemetry is not journaled (too much volume), so its streams cannot follow the journal as
the other streams do: `TelemetryService.ingest` hands each committed batch here, and every
reader of a Thing gets that Thing's records. In this process only: a stream sees the
telemetry this node ingested (with an external broker every node subscribes to all of it;
samples posted over HTTP reach the streams of the node that took them). A reader that falls
more than `MAX_PENDING` records behind loses the oldest; nothing waits for it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import orjson

from iotas.domain import clock

MAX_PENDING = 1000
# (thing id, key, ts_us, num, value): the telemetry rows of one ingest.
Row = tuple[str, str, int, float | None, str | None]


class Reader:
    """One stream's records of one Thing, oldest first."""

    def __init__(self) -> None:
        self.records: deque[dict[str, Any]] = deque(maxlen=MAX_PENDING)
        self._ready = asyncio.Event()

    def put(self, records: list[dict[str, Any]]) -> None:
        self.records.extend(records)
        self._ready.set()

    async def next(self) -> dict[str, Any]:
        while not self.records:
            self._ready.clear()
            await self._ready.wait()
        return self.records.popleft()


class TelemetryFeed:
    def __init__(self) -> None:
        self._readers: dict[str, set[Reader]] = {}

    @property
    def watched(self) -> bool:
        return bool(self._readers)

    def committed(self, rows_by_thing: Mapping[str, Sequence[Row]]) -> None:
        """A batch is committed: each watched Thing's samples, as records (one per instant,
        `{"ts": ..., key: value, ...}`, as the device sent them)."""
        for thing_id, readers in self._readers.items():
            rows = rows_by_thing.get(thing_id)
            if rows:
                records = _records(rows)
                for reader in readers:
                    reader.put(records)

    @contextmanager
    def reader(self, thing_id: str) -> Iterator[Reader]:
        reader = Reader()
        self._readers.setdefault(thing_id, set()).add(reader)
        try:
            yield reader
        finally:
            readers = self._readers.get(thing_id)
            if readers is not None:
                readers.discard(reader)
                if not readers:
                    del self._readers[thing_id]


def _records(rows: Sequence[Row]) -> list[dict[str, Any]]:
    by_ts: dict[int, dict[str, Any]] = {}
    for _, key, ts_us, num, value in rows:
        record = by_ts.get(ts_us)
        if record is None:
            record = by_ts[ts_us] = {"ts": clock.to_rfc3339(ts_us)}
        record[key] = num if num is not None else None if value is None else orjson.loads(value)
    return [by_ts[ts] for ts in sorted(by_ts)]
