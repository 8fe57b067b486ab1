"""Following the journal: what the SSE streams, the desired-state mirror, the WoT reconciler
and the long polls share.

Events come in batches after a seq, so a follower that resumes after the last seq it saw sees
every later event exactly once. Between reads it waits for a commit (JournalSignal: at once
for commits in this process) or `idle` seconds (commits made by another node), and yields an
empty batch after each read that found nothing, so a caller can check on its client or send a
keepalive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection
from typing import Any

from iotas.domain.journal import THING
from iotas.services.journal import JournalService
from iotas.services.stream import JournalSignal

BATCH = 500
IDLE_SECONDS = 1.0
# Reads of one follower start at least this far apart. Under a steady stream of small commits
# (1,000 twin updates a second commit a few hundred times a second) every follower read the
# journal after every commit, on the reader threads an attribute query needs, mostly to find
# nothing it follows; now commits that land within the gap are read together. It adds at
# most this much to what a follower delivers, and nothing when commits are further apart.
MIN_GAP_SECONDS = 0.01

Event = dict[str, Any]
Read = Callable[[int, int], Awaitable[list[Event]]]


async def follow_reads(
    signal: JournalSignal,
    read: Read,
    after: int,
    *,
    keep: Callable[[Event], bool] | None = None,
    batch: int = BATCH,
    idle: float = IDLE_SECONDS,
    types: Collection[str] | None = None,
) -> AsyncGenerator[list[Event], None]:
    """The events `read(after, limit)` finds that `keep` keeps (all if None), batch by batch,
    as they come, for ever. With `types` (the only event types `read` can return), a commit
    of this process with none of them does not cause a read: at thousands of commits a
    second, each follower's read per commit was most of the reader threads' work, and their
    GIL taken from the event loop. Other nodes' commits are still found within `idle`."""
    loop = asyncio.get_running_loop()
    last_read = -MIN_GAP_SECONDS
    while True:
        since = loop.time() - last_read
        if since < MIN_GAP_SECONDS:
            await asyncio.sleep(MIN_GAP_SECONDS - since)
        # Taken before the read: a commit that lands while it runs ends the wait at once.
        watched, seen = signal.watch(), signal.last_seq
        last_read = loop.time()
        events = await read(after, batch)
        if events:
            after = events[-1]["seq"]
            yield events if keep is None else [e for e in events if keep(e)]
            if len(events) == batch:
                continue  # more may wait right behind
        else:
            # Everything up to `seen` was committed before the read, which found nothing of
            # interest in it: the next read need not look at it again.
            after = max(after, seen)
            yield events
        deadline = loop.time() + idle
        while True:
            await signal.wait(max(0.0, deadline - loop.time()), watched)
            if types is None or loop.time() >= deadline or signal.committed_any(types, seen):
                break
            # Only commits of other types since the read: nothing here to read, wait on.
            watched = signal.watch()


def follow(
    journal: JournalService,
    signal: JournalSignal,
    after: int,
    *,
    kinds: Collection[str] | None = (THING,),
    types: list[str] | None = None,
    namespaces: tuple[str, ...] | None = None,
    batch: int = BATCH,
    idle: float = IDLE_SECONDS,
) -> AsyncGenerator[list[Event], None]:
    """Journal events after seq `after` of the record `kinds` (Things by default; all if
    None) and event `types` (all if None), of Things in `namespaces` (all if None), batch by
    batch, for ever."""

    async def read(start: int, limit: int) -> list[Event]:
        return await journal.feed(start, limit, types, namespaces, kinds)

    return follow_reads(signal, read, after, batch=batch, idle=idle, types=types)
