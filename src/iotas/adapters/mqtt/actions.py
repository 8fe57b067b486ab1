"""Sending invocations to MQTT devices: `things/{id}/actions/{name}/{inv}`, QoS 1, not retained.

A Thing is sent what is pending for it (queued, or delivered without a result yet) when it
becomes reachable, in creation order, and a new invocation at once while it is reachable.
Nothing is sent to a Thing that is not connected: no broker parks an invocation for an
offline device. Each one acknowledged is recorded `delivered` (one more attempt). A delivered
invocation with no result is sent again on the Thing's next connection (at least once; the
device SDK drops a repeat by invocation id). What "reachable" and "acknowledged" mean is the
transport's (`Deliver`): on the embedded broker, connected and subscribed to its actions,
and the device's own PUBACK; on an external broker, connected (its presence) and the
broker's PUBACK with a subscriber to hand it to (MQTT 5 reason code, not 0x10).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import orjson

from iotas.adapters.mqtt import topics
from iotas.domain import journal as ev
from iotas.domain.invocations import Invocation
from iotas.services.context import Actor, Context
from iotas.services.follow import follow
from iotas.services.journal import JournalService
from iotas.services.stream import JournalSignal

log = logging.getLogger("iotas.mqtt.actions")

DISPATCHER = "mqtt-actions"
ACTOR = Actor("mqtt-dispatcher", role="system")
# Things being sent to at once (each a read of its queue, then its publishes).
AT_ONCE = 64
# How soon a round whose sends failed (the broker connection, say) is tried again.
RETRY_S = 1.0
WATCHED = [ev.INVOCATION_CREATED, ev.THING_CONNECTED, ev.THING_DISCONNECTED]


class Queue(Protocol):
    """What the dispatcher needs of `services.invocations.Invocations`."""

    async def pending(self, thing_id: str) -> list[Invocation]: ...
    async def pending_things(self) -> list[str]: ...
    async def delivered(self, ctx: Context, ids: list[str]) -> None: ...


# Send one invocation; True once the transport says it reached the device.
Deliver = Callable[[Invocation], Awaitable[bool]]
# Whether a Thing can be sent to now (None: ask the transport's Deliver only).
Reachable = Callable[[str], Awaitable[bool]]


def message(invocation: Invocation) -> tuple[str, bytes]:
    """The topic and payload (the input as JSON) of an invocation."""
    topic = topics.action(invocation.thing_id, invocation.action, invocation.id)
    return topic, orjson.dumps(invocation.input)


class Dispatcher:
    def __init__(
        self,
        queue: Queue,
        journal: JournalService,
        signal: JournalSignal,
        deliver: Deliver,
        *,
        reachable: Reachable | None = None,
        at_once: int = AT_ONCE,
        on_presence: bool = True,
    ) -> None:
        self.queue = queue
        self.journal = journal
        self.signal = signal
        self.deliver = deliver
        self.reachable = reachable
        # Whether a Thing's `thing_connected` starts a new connection's round (an external
        # broker); the embedded broker says so itself when the device subscribes, which
        # comes after, so there the event would only send the same things again.
        self.on_presence = on_presence
        self.ctx = Context(ACTOR, "sent over MQTT")
        self.sent = 0
        # Per Thing, what this connection of it has been sent (not sent again until it
        # reconnects); kept to what is still pending.
        self._sent: dict[str, set[str]] = {}
        self._fresh: set[str] = set()  # Things on a new connection since their last round
        self._again: set[str] = set()  # Things woken while a round of theirs runs
        self._rounds: dict[str, asyncio.Task[None]] = {}
        self._limit = asyncio.Semaphore(at_once)
        self.running = False  # only while `run()` runs (a cluster-wide one: on the leader)

    async def run(self) -> None:
        """Send what is pending for reachable Things, then follow the journal; until
        cancelled."""
        after = await self.journal.head_seq()
        self.running = True
        await self.wake_all()
        try:
            while True:
                try:
                    async for events in follow(
                        self.journal,
                        self.signal,
                        after,
                        kinds=(ev.THING, ev.INVOCATION),
                        types=WATCHED,
                    ):
                        if events:
                            after = events[-1]["seq"]
                        self.apply(events)
                except Exception:  # the database away for a moment: follow again shortly
                    log.exception("actions: following the journal failed")
                    await asyncio.sleep(1.0)
        finally:
            self.running = False
            self._sent.clear()
            rounds = list(self._rounds.values())
            for task in rounds:
                task.cancel()
            await asyncio.gather(*rounds, return_exceptions=True)

    def apply(self, events: Sequence[dict[str, Any]]) -> None:
        for event in events:
            kind = event["type"]
            if kind == ev.INVOCATION_CREATED:
                thing_id = (event.get("patch") or {}).get("thing")
                if isinstance(thing_id, str):
                    self.wake(thing_id)
            elif kind == ev.THING_CONNECTED and self.on_presence:
                self.wake(event["thing_id"], connected=True)
            elif kind == ev.THING_DISCONNECTED:
                self._sent.pop(event["thing_id"], None)

    async def wake_all(self) -> None:
        """A round for every Thing with something pending (at start, after the broker
        connection came back)."""
        if not self.running:
            return
        try:
            things = await self.queue.pending_things()
        except Exception:
            log.exception("actions: could not read which Things have invocations pending")
            return
        for thing_id in things:
            self.wake(thing_id)

    def wake(self, thing_id: str, *, connected: bool = False) -> None:
        """Send the Thing what is pending for it; `connected`: on a new connection, so what
        was sent to an earlier one goes again."""
        if not self.running:
            return
        if connected:
            self._fresh.add(thing_id)
        if thing_id in self._rounds:
            self._again.add(thing_id)
            return
        task = asyncio.create_task(self._rounds_of(thing_id), name=f"iotas-actions {thing_id}")
        self._rounds[thing_id] = task

    async def _rounds_of(self, thing_id: str) -> None:
        try:
            while True:
                self._again.discard(thing_id)
                async with self._limit:
                    try:
                        await self._round(thing_id)
                    except Exception:
                        log.exception("actions: sending to %s failed", thing_id)
                if thing_id not in self._again:
                    return
        finally:
            del self._rounds[thing_id]

    async def _round(self, thing_id: str) -> None:
        if thing_id in self._fresh:
            self._fresh.discard(thing_id)
            self._sent.pop(thing_id, None)
        if self.reachable is not None and not await self.reachable(thing_id):
            return
        pending = await self.queue.pending(thing_id)
        sent = self._sent.get(thing_id, set()) & {p.id for p in pending}
        todo = [p for p in pending if p.id not in sent]
        if todo:
            # Started in order, so written in order; acknowledged in any order.
            outcomes = await asyncio.gather(
                *(self.deliver(p) for p in todo), return_exceptions=True
            )
            done = [p.id for p, ok in zip(todo, outcomes, strict=True) if ok is True]
            failed = [o for o in outcomes if isinstance(o, BaseException)]
            if failed:
                log.warning("actions: %d not sent to %s: %s", len(failed), thing_id, failed[0])
                # The transport failed (not the Thing's absence): try again in a while.
                asyncio.get_running_loop().call_later(RETRY_S, self.wake, thing_id)
            if done:
                sent.update(done)
                self.sent += len(done)
                await self.queue.delivered(self.ctx, done)
        if sent:
            self._sent[thing_id] = sent
        else:
            self._sent.pop(thing_id, None)
