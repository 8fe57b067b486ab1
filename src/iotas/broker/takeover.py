"""One live connection per client id: a new one takes the session over.

MQTT 3.1.1 (3.1.4): if the client id is already connected, the server disconnects the
existing client. amqtt 0.12 left it open (a clean session's old connection kept running,
detached) or ended it while the new one was already using the session (whose state it then
set to disconnected, so the Thing read as disconnected and messages queued instead of
flowing). Here the new connection closes the old one and waits until it has ended before it
touches the session.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Final

log = logging.getLogger("iotas.broker")

# How long a new connection waits for the one it takes over to end (it is aborted, so this is
# the event loop's delay, not the old client's).
TAKEOVER_WAIT: Final = 10.0


@dataclass(eq=False)
class Connection:
    """A client's connection from the moment its login is accepted until it has ended."""

    client_id: str
    writer: Any  # amqtt's writer adapter
    handler: Any = None  # amqtt's protocol handler, once attached
    taken_over: bool = False
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    async def close(self) -> None:
        """End it as a network failure would: its own task then cleans up (last will,
        handler, session state)."""
        stream = getattr(self.writer, "_writer", None)
        transport = getattr(stream, "transport", None)
        if transport is not None:
            transport.abort()
        if self.handler is not None:
            await self.handler.handle_connection_closed()


class Connections:
    def __init__(self) -> None:
        self._live: dict[str, Connection] = {}

    async def take(self, client_id: str, writer: Any) -> Connection:
        """The new connection of `client_id`, once any earlier one has been closed and has
        ended. Of connections racing for one client id, the last one wins."""
        mine = Connection(client_id, writer)
        while (held := self._live.get(client_id)) is not None:
            held.taken_over = True
            await held.close()
            try:
                await asyncio.wait_for(held.finished.wait(), TAKEOVER_WAIT)
            except TimeoutError:
                log.warning("the connection of %s taken over did not end in time", client_id)
                if self._live.get(client_id) is held:
                    del self._live[client_id]
        self._live[client_id] = mine
        return mine

    def release(self, connection: Connection) -> None:
        connection.finished.set()
        if self._live.get(connection.client_id) is connection:
            del self._live[connection.client_id]

    async def ended(self) -> None:
        """Wait (bounded) until every connection has ended, as at shutdown."""
        waits = [c.finished.wait() for c in self._live.values()]
        if waits:
            try:
                await asyncio.wait_for(asyncio.gather(*waits), TAKEOVER_WAIT)
            except TimeoutError:
                log.warning("%d connections had not ended at shutdown", len(self._live))
