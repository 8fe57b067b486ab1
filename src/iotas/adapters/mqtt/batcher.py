"""Collecting telemetry from many messages into one commit.

Each message waits for the commit of the batch it joined; the adapter acknowledges it to the
broker only then. Larger batches mean fewer transactions; the window bounds the wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from iotas.domain.telemetry import Sample

Flush = Callable[[list[tuple[str, list[Sample]]]], Awaitable[None]]


class TelemetryBatcher:
    def __init__(self, flush: Flush, *, max_messages: int = 2000, window: float = 0.01) -> None:
        self._flush = flush
        self._max = max_messages
        self._window = window
        self._items: list[tuple[str, list[Sample]]] = []
        self._done: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def add(self, thing_id: str, samples: list[Sample]) -> None:
        """Return once these samples are committed (or raise if their batch failed)."""
        loop = asyncio.get_running_loop()
        if self._done is None:
            self._done = loop.create_future()
            self._timer = loop.call_later(self._window, self._cut)
        done = self._done
        self._items.append((thing_id, samples))
        if len(self._items) >= self._max:
            self._cut()
        await asyncio.shield(done)

    def _cut(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, done = self._items, self._done
        self._items, self._done = [], None
        if done is None:
            return
        task = asyncio.get_running_loop().create_task(self._commit(items, done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _commit(
        self, items: list[tuple[str, list[Sample]]], done: asyncio.Future[None]
    ) -> None:
        try:
            await self._flush(items)
        except Exception as exc:
            done.set_exception(exc)
        else:
            done.set_result(None)

    async def drain(self) -> None:
        if self._items:
            self._cut()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
