"""Server-Sent Events over the journal: what /api/v1/events and /tdd/events share.

Events are read in batches after a seq, so a client that resumes with `Last-Event-ID` sees
every later event exactly once; the stream wakes on each commit (JournalSignal) and sends a
comment line now and then so proxies keep quiet connections open.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from iotas.domain import cursor as cursors
from iotas.domain.errors import InvalidInput
from iotas.domain.journal import THING
from iotas.runtime import Runtime
from iotas.services.follow import Read, follow_reads

BATCH = 500
POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
# Tell EventSource clients how soon to reconnect; they resume with Last-Event-ID.
PREAMBLE = b"retry: 2000\n\n"
KEEPALIVE = b": keepalive\n\n"

Event = dict[str, Any]
Select = Callable[[list[Event]], Awaitable[list[Event]]]


def resume_point(after: int | None, last_event_id: str | None) -> int | None:
    """Where a stream starts: after `Last-Event-ID` (an EventSource reconnecting) or `after`;
    None: from now. Checked before the stream starts, so a bad one is a 400, not a stream
    that dies on its first read."""
    if last_event_id is not None:
        return cursors.seq(last_event_id, "Last-Event-ID")
    if after is not None and not 0 <= after <= cursors.MAX_POSITION:
        raise InvalidInput(f"after must be a seq from 0 to {cursors.MAX_POSITION}", field="after")
    return after


async def journal_events(
    rt: Runtime,
    last: int,
    wanted: list[str] | None,
    select: Select | None = None,
    *,
    namespaces: tuple[str, ...] | None,
    kind: str = THING,
) -> AsyncIterator[Event | None]:
    """Journal events of the record `kind` (Things by default) after seq `last` of the
    `wanted` types (all if None) of Things in `namespaces` (all if None) that `select` keeps,
    forever; None now and then when nothing was sent for a while (a keepalive)."""
    quiet_since = time.monotonic()
    keep = None if wanted is None else (lambda e: e["type"] in wanted)
    reads = follow_reads(rt.signal, _feed(rt, namespaces, kind), last, keep=keep, batch=BATCH)
    async for batch in reads:
        chosen = batch
        if select is not None and chosen:
            chosen = await select(chosen)
        for event in chosen:
            yield event
        if chosen:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
            yield None
            quiet_since = time.monotonic()


def _feed(rt: Runtime, namespaces: tuple[str, ...] | None, kind: str) -> Read:
    async def read(after: int, limit: int) -> list[Event]:
        return await rt.journal.feed(after, limit, namespaces=namespaces, kinds=(kind,))

    return read


def frame(seq: int, event_type: str, data: bytes) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, event_type.encode(), data)
