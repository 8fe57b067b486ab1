"""Presence kept by the registry: connect and disconnect journaled once each, and the reset
the embedded broker does when it starts."""

from __future__ import annotations

from iotas.domain import clock
from iotas.domain import journal as ev
from iotas.runtime import Runtime
from iotas.services.context import Actor, Context

CTX = Context(Actor("tester"), "test")


async def test_disconnect_all_undoes_every_stale_connection_once(rt: Runtime) -> None:
    for i in range(5):
        await rt.registry.create(CTX, {"id": f"acme:d-{i}", "kind": "sensor"})
    for i in (1, 3, 4):
        await rt.registry.set_connected(CTX, f"acme:d-{i}", True)
        await rt.registry.set_connected(CTX, f"acme:d-{i}", True)  # no change: not journaled
    assert await rt.registry.disconnect_all(CTX) == 3
    assert await rt.registry.select("connected == true", limit=10, after_id=None) == []
    types = [e["type"] for e in await rt.journal.feed(0, 100)]
    assert types.count(ev.THING_CONNECTED) == 3 and types.count(ev.THING_DISCONNECTED) == 3
    assert await rt.registry.disconnect_all(CTX) == 0
    assert (await rt.journal.verify()).ok


async def test_a_change_after_a_touch_answers_with_the_new_last_seen(rt: Runtime) -> None:
    """`touch` is not journaled, yet the store's cached state learns it: the Thing a later
    change answers with (folded from that state) says when it was last heard from."""
    await rt.registry.create(CTX, {"id": "acme:t", "kind": "sensor"})
    await rt.registry.patch_twin(CTX, "acme:t", "reported", {"v": 1})  # cached now
    seen_us = clock.now_us()
    await rt.registry.touch(["acme:t"], seen_us)
    after = await rt.registry.patch_twin(CTX, "acme:t", "reported", {"v": 2})
    assert after.last_seen == clock.to_rfc3339(seen_us)
    assert (await rt.registry.get("acme:t")).last_seen == after.last_seen
