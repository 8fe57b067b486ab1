"""Collecting telemetry from many messages into one commit.

Each message waits for the commit of the batch it joined; the adapter acknowledges it to the
broker only then. Larger batches mean fewer transactions; the window bounds the wait. The
flush says which Things of the batch do not exist (their samples were not stored), so each
message learns whether it was stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection

from iotas.domain.telemetry import Sample

# Stores a batch; returns the ids of the Things in it that do not exist.
Flush = Callable[[list[tuple[str, list[Sample]]]], Awaitable[Collection[str]]]


class TelemetryBatcher:
    """Batches are cut after `window` seconds, or after `busy_window` while messages arrive
    at `busy_rate` a second or more (measured over `rate_period`, not per batch: a commit
    holds the loop, and what arrived meanwhile comes in at once): each commit then carries
    more messages (a commit has a cost of its own, and on PostgreSQL the latest-value upsert
    costs one row per series it touches, however many samples each gets), while a lone
    device, or a fleet iotas keeps up with easily, waits no longer for its acknowledgements
    (bench/README.md, decision 41)."""

    def __init__(
        self,
        flush: Flush,
        *,
        max_messages: int = 2000,
        window: float = 0.01,
        busy_window: float = 0.1,
        busy_rate: float = 8000.0,
        rate_period: float = 1.0,
    ) -> None:
        self._flush = flush
        self._max = max_messages
        self._quiet_window = window
        self._busy_window = busy_window
        self._busy_rate = busy_rate
        self._window = window
        self._rate_period = rate_period
        self._counted = 0
        self._counting_since: float | None = None
        self._items: list[tuple[str, list[Sample]]] = []
        self._done: asyncio.Future[Collection[str]] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def join(self, thing_id: str, samples: list[Sample]) -> asyncio.Future[Collection[str]]:
        """Put the samples in the batch being collected. Its future, shared by every message
        of the batch, says which Things of the batch do not exist once it is committed (their
        samples were not stored), or fails if the batch could not be committed."""
        if self._done is None:
            # Only here: asyncio.get_running_loop() makes a getpid() system call on Linux,
            # 7% of the event loop's time when it ran for every message.
            loop = asyncio.get_running_loop()
            self._done = loop.create_future()
            self._timer = loop.call_later(self._window, self._cut)
        done = self._done
        self._items.append((thing_id, samples))
        if len(self._items) >= self._max:
            self._cut()
        return done

    def _cut(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, done = self._items, self._done
        self._items, self._done = [], None
        if done is None:
            return
        loop = asyncio.get_running_loop()
        self._measure(len(items), loop.time())
        task = loop.create_task(self._commit(items, done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _measure(self, messages: int, now: float) -> None:
        """Count messages; once a period has passed, choose the window by their rate."""
        if self._counting_since is None:
            self._counting_since = now
        self._counted += messages
        elapsed = now - self._counting_since
        if elapsed >= self._rate_period:
            busy = self._counted >= self._busy_rate * elapsed
            self._window = self._busy_window if busy else self._quiet_window
            self._counted, self._counting_since = 0, now

    async def _commit(
        self, items: list[tuple[str, list[Sample]]], done: asyncio.Future[Collection[str]]
    ) -> None:
        try:
            unknown = await self._flush(items)
        except asyncio.CancelledError:
            done.cancel()  # its messages are not acknowledged; nobody waits for ever
            raise
        except Exception as exc:
            done.set_exception(exc)
        else:
            done.set_result(unknown)

    async def drain(self) -> None:
        if self._items:
            self._cut()
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
