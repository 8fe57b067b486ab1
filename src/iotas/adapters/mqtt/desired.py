"""Mirroring desired state to `things/{id}/desired`, retained, for every transport."""

from __future__ import annotations

from collections.abc import Callable

import orjson

from iotas.adapters.mqtt import topics
from iotas.domain.journal import DESIRED_CHANGED, THING_DELETED
from iotas.domain.things import Thing
from iotas.services.follow import follow
from iotas.services.journal import JournalService
from iotas.services.registry import Registry
from iotas.services.stream import JournalSignal

Publish = Callable[[str, bytes], None]


def desired_message(thing: Thing) -> bytes:
    return orjson.dumps({**thing.twin.desired, "$version": thing.twin.version})


async def mirror_desired(
    journal: JournalService,
    registry: Registry,
    signal: JournalSignal,
    publish: Publish,
    *,
    after: int,
) -> None:
    """Publish the current desired state of every Thing whose desired state changes after
    seq `after` (a deleted Thing's retained message is cleared). Runs until cancelled."""
    async for events in follow(journal, signal, after, types=[DESIRED_CHANGED, THING_DELETED]):
        if not events:
            continue
        ids = sorted({e["thing_id"] for e in events})
        current = await registry.get_many(ids)
        for thing_id in ids:
            thing = current.get(thing_id)
            # An empty retained message is how MQTT clears a retained one.
            publish(topics.desired(thing_id), b"" if thing is None else desired_message(thing))


async def publish_all_desired(registry: Registry, publish: Publish) -> int:
    """Publish every non-empty desired state (for a broker that keeps no retained messages
    across restarts, like the embedded one). Returns how many were published."""
    count = 0
    after: str | None = None
    while True:
        page = await registry.select(None, limit=500, after_id=after)
        if not page:
            return count
        for thing in page:
            if thing.twin.desired:
                publish(topics.desired(thing.id), desired_message(thing))
                count += 1
        after = page[-1].id
