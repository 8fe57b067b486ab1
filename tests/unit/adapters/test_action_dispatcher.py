"""The MQTT action dispatcher against a fake queue and transport: order per Thing, nothing
sent twice to one connection, everything pending again on a new one, nothing to a Thing that
is not reachable, and nothing at all unless it runs."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from iotas.adapters.mqtt.actions import Dispatcher, message
from iotas.domain.invocations import Invocation, Status
from iotas.services.context import Context


def invocation(n: int, thing_id: str = "acme:a") -> Invocation:
    return Invocation(
        id=f"inv-{n:04d}",
        thing_id=thing_id,
        action="blink",
        input={"n": n},
        status=Status.QUEUED,
        created_us=n,
        updated_us=n,
        expires_us=10**18,
        actor="ops",
    )


class FakeQueue:
    def __init__(self, *items: Invocation) -> None:
        self.items = {i.id: i for i in items}
        self.delivered_calls: list[list[str]] = []

    async def pending(self, thing_id: str) -> list[Invocation]:
        return sorted(
            (i for i in self.items.values() if i.thing_id == thing_id and i.status in _PENDING),
            key=lambda i: i.id,
        )

    async def pending_things(self) -> list[str]:
        return sorted({i.thing_id for i in self.items.values() if i.status in _PENDING})

    async def delivered(self, ctx: Context, ids: list[str]) -> None:
        self.delivered_calls.append(ids)
        for i in ids:
            self.items[i] = replace(self.items[i], status=Status.DELIVERED)


_PENDING = {Status.QUEUED, Status.DELIVERED}


class FakeTransport:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.reachable: set[str] = set()

    async def deliver(self, item: Invocation) -> bool:
        if item.thing_id not in self.reachable:
            return False
        self.sent.append(message(item))
        return True


def dispatcher(queue: FakeQueue, transport: FakeTransport) -> Dispatcher:
    none: Any = None
    made = Dispatcher(queue, none, none, transport.deliver)
    made.running = True
    return made


async def settle(d: Dispatcher) -> None:
    while d._rounds:
        await asyncio.gather(*list(d._rounds.values()))


async def test_sends_in_order_once_per_connection_and_again_on_a_new_one() -> None:
    queue = FakeQueue(invocation(2), invocation(1), invocation(3, "acme:b"))
    transport = FakeTransport()
    transport.reachable = {"acme:a"}
    d = dispatcher(queue, transport)
    d.wake("acme:a")
    d.wake("acme:b")  # not reachable: nothing, and nothing recorded
    await settle(d)
    assert [t for t, _ in transport.sent] == [
        "things/acme:a/actions/blink/inv-0001",
        "things/acme:a/actions/blink/inv-0002",
    ]
    assert transport.sent[0][1] == b'{"n":1}'
    assert queue.delivered_calls == [["inv-0001", "inv-0002"]]

    queue.items["inv-0004"] = invocation(4)
    d.wake("acme:a")  # a new invocation: only it goes
    await settle(d)
    assert transport.sent[-1][0].endswith("inv-0004") and len(transport.sent) == 3

    d.wake("acme:a", connected=True)  # a new connection: what has no result goes again
    await settle(d)
    assert [t.rsplit("/", 1)[1] for t, _ in transport.sent[3:]] == [
        "inv-0001",
        "inv-0002",
        "inv-0004",
    ]


async def test_a_wake_during_a_round_runs_another_round() -> None:
    queue = FakeQueue(invocation(1))
    transport = FakeTransport()
    transport.reachable = {"acme:a"}
    d = dispatcher(queue, transport)
    d.wake("acme:a")
    queue.items["inv-0002"] = invocation(2)
    d.wake("acme:a")  # while the first round runs
    await settle(d)
    assert [t.rsplit("/", 1)[1] for t, _ in transport.sent] == ["inv-0001", "inv-0002"]


async def test_a_dispatcher_that_does_not_run_sends_nothing() -> None:
    queue = FakeQueue(invocation(1))
    transport = FakeTransport()
    transport.reachable = {"acme:a"}
    d = dispatcher(queue, transport)
    d.running = False  # a cluster-wide one on a node that does not lead
    d.wake("acme:a")
    await d.wake_all()
    await settle(d)
    assert transport.sent == []
