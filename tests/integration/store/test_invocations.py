"""The invocations service on both backends: checks at creation, idempotency, the queue
bound, delivery, results from devices (hostile ones too), cancel, wait, expiry and the
journal."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from iotas.domain import clock
from iotas.domain import journal as ev
from iotas.domain.errors import Conflict, InvalidInput, Locked, NotFound, TooManyRequests
from iotas.domain.invocations import Status
from iotas.runtime import Runtime
from iotas.services.context import Actor, Context
from iotas.services.invocations import Invocations
from support import LAMP_MODEL

CTX = Context(Actor("ops"), "test")
DEVICE = Context(Actor("acme:lamp", role="device"), "result")
MODEL = LAMP_MODEL


async def _lamp(rt: Runtime, thing_id: str = "acme:lamp") -> None:
    await rt.registry.create(CTX, {"id": thing_id, "kind": "lamp", "description": MODEL})


async def test_create_checks_the_thing_the_action_and_the_input(rt: Runtime) -> None:
    await _lamp(rt)
    with pytest.raises(NotFound):
        await rt.invocations.create(CTX, "acme:none", "dim", {"level": 1})
    with pytest.raises(NotFound, match="no action 'blink'"):
        await rt.invocations.create(CTX, "acme:lamp", "blink", None)
    with pytest.raises(InvalidInput) as caught:
        await rt.invocations.create(CTX, "acme:lamp", "dim", {"level": 500})
    assert caught.value.extra["field"] == "/input/level"
    with pytest.raises(InvalidInput):
        await rt.invocations.create(CTX, "acme:lamp", "dim", {"level": 5}, ttl_s=0)
    limited = Context(Actor("ops", role="operator", namespaces=("other",)))
    with pytest.raises(NotFound):
        await rt.invocations.create(limited, "acme:lamp", "dim", {"level": 5})
    made = await rt.invocations.create(CTX, "acme:lamp", "dim", {"level": 5}, ttl_s=60)
    assert made.status is Status.QUEUED and made.expires_us - made.created_us == 60_000_000
    assert await rt.invocations.get(made.id) == made
    assert await rt.invocations.list(thing_id="acme:lamp") == [made]


async def test_a_quarantined_thing_is_locked(rt: Runtime) -> None:
    await _lamp(rt)
    await rt.quarantine.quarantine(CTX, "acme:lamp", {"reason": "odd traffic"})
    with pytest.raises(Locked):
        await rt.invocations.create(CTX, "acme:lamp", "reboot", None)


async def test_the_same_idempotency_key_returns_the_same_invocation(rt: Runtime) -> None:
    await _lamp(rt)
    first = await rt.invocations.create(CTX, "acme:lamp", "dim", {"level": 1}, idempotency_key="k")
    again = await rt.invocations.create(CTX, "acme:lamp", "dim", {"level": 1}, idempotency_key="k")
    assert again.id == first.id
    with pytest.raises(Conflict):
        await rt.invocations.create(CTX, "acme:lamp", "dim", {"level": 2}, idempotency_key="k")
    await rt.invocations.create(CTX, "acme:lamp", "reboot", 1, idempotency_key="b")
    with pytest.raises(Conflict):  # JSON equality: true is not 1
        await rt.invocations.create(CTX, "acme:lamp", "reboot", True, idempotency_key="b")
    other = await rt.invocations.create(CTX, "acme:lamp", "dim", {"level": 2}, idempotency_key="j")
    assert other.id != first.id
    assert len(await rt.invocations.list(thing_id="acme:lamp")) == 3


async def test_the_queue_per_thing_is_bounded(rt: Runtime) -> None:
    bounded = Invocations(rt.store, rt.signal, rt.stats, queue_bound=3)
    await _lamp(rt)
    await _lamp(rt, "acme:other")
    made = [await bounded.create(CTX, "acme:lamp", "reboot", None) for _ in range(3)]
    with pytest.raises(TooManyRequests, match="3 invocations not finished"):
        await bounded.create(CTX, "acme:lamp", "reboot", None)
    await bounded.create(CTX, "acme:other", "reboot", None)  # another Thing's queue
    await bounded.cancel(CTX, made[0].id)  # a final one no longer counts
    await bounded.create(CTX, "acme:lamp", "reboot", None)


async def test_delivery_results_and_the_journal(rt: Runtime) -> None:
    await _lamp(rt)
    a = await rt.invocations.create(CTX, "acme:lamp", "dim", {"level": 1})
    b = await rt.invocations.create(CTX, "acme:lamp", "reboot", None)
    assert [i.id for i in await rt.invocations.pending("acme:lamp")] == [a.id, b.id]
    assert await rt.invocations.pending_things() == ["acme:lamp"]
    await rt.invocations.delivered(CTX, [a.id, b.id])
    await rt.invocations.delivered(CTX, [a.id])  # sent again on a reconnect
    got = await rt.invocations.many([a.id, b.id])
    assert (got[a.id].status, got[a.id].attempts) == (Status.DELIVERED, 2)
    assert got[b.id].delivered_us is not None
    # Still pending until a result: sent again when the Thing comes back (at least once).
    assert [i.id for i in await rt.invocations.pending("acme:lamp")] == [a.id, b.id]

    running = await rt.invocations.report(
        DEVICE, "acme:lamp", a.id, {"status": "running", "progress": 30}
    )
    assert running is not None and running.progress == 30.0
    done = await rt.invocations.report(
        DEVICE, "acme:lamp", a.id, {"status": "succeeded", "output": {"ok": True}}
    )
    assert done is not None and done.status is Status.SUCCEEDED and done.output == {"ok": True}
    assert [i.id for i in await rt.invocations.pending("acme:lamp")] == [b.id]
    with pytest.raises(Conflict):
        await rt.invocations.cancel(CTX, a.id)

    events = await rt.journal.feed(0, 100, kinds=["invocation"])
    assert [e["type"] for e in events if e["record_id"] == a.id] == [
        ev.INVOCATION_CREATED,
        ev.INVOCATION_CHANGED,
        ev.INVOCATION_CHANGED,
        ev.INVOCATION_CHANGED,
        ev.INVOCATION_CHANGED,
    ]
    assert events[0]["patch"]["input"] == {"level": 1}
    assert [e["patch"]["status"] for e in events if e["record_id"] == a.id][1:] == [
        "delivered",
        "delivered",
        "running",
        "succeeded",
    ]
    assert (await rt.journal.verify()).ok


async def test_a_device_cannot_report_what_is_not_its_own(rt: Runtime) -> None:
    """Unknown, another Thing's, final or malformed: counted, answered None, never raised."""
    await _lamp(rt)
    await _lamp(rt, "acme:other")
    theirs = await rt.invocations.create(CTX, "acme:other", "reboot", None)
    mine = await rt.invocations.create(CTX, "acme:lamp", "reboot", None)
    report = rt.invocations.report
    assert await report(DEVICE, "acme:lamp", theirs.id, {"status": "succeeded"}) is None
    assert await report(DEVICE, "acme:lamp", "inv-nope", {"status": "succeeded"}) is None
    assert await report(DEVICE, "acme:lamp", mine.id, {"status": "done"}) is None
    assert await report(DEVICE, "acme:lamp", mine.id, "garbage") is None
    assert await report(DEVICE, "acme:lamp", mine.id, {"status": "failed", "error": "x"})
    assert await report(DEVICE, "acme:lamp", mine.id, {"status": "succeeded"}) is None
    assert (await rt.invocations.get(theirs.id)).status is Status.QUEUED
    assert rt.stats.rejected["invocation_other_thing"] == 1
    assert rt.stats.rejected["invocation_unknown"] == 1
    assert rt.stats.rejected["invocation_result_malformed"] == 2
    assert rt.stats.rejected["invocation_final"] == 1


async def test_an_expired_invocation_is_never_pending_even_before_the_sweep(rt: Runtime) -> None:
    await _lamp(rt)
    short = await rt.invocations.create(CTX, "acme:lamp", "reboot", None, ttl_s=1)
    long = await rt.invocations.create(CTX, "acme:lamp", "reboot", None)
    deadline = asyncio.get_running_loop().time() + 5
    while clock.now_us() <= short.expires_us:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    # The sweep has not run: pending() filters by time itself, and delivered() refuses it.
    assert [i.id for i in await rt.invocations.pending("acme:lamp")] == [long.id]
    await rt.invocations.delivered(CTX, [short.id])
    assert (await rt.invocations.get(short.id)).status is Status.QUEUED
    assert await rt.invocations.expire_due(clock.now_us()) == 1
    assert (await rt.invocations.get(short.id)).status is Status.EXPIRED
    assert await rt.invocations.expire_due(clock.now_us()) == 0
    late = await rt.invocations.report(DEVICE, "acme:lamp", short.id, {"status": "succeeded"})
    assert late is None and rt.stats.rejected["invocation_final"] == 1


async def test_wait_returns_at_the_final_status_or_the_timeout(rt: Runtime) -> None:
    await _lamp(rt)
    made = await rt.invocations.create(CTX, "acme:lamp", "reboot", None)
    unchanged = await rt.invocations.wait(made.id, 0.05)
    assert unchanged.status is Status.QUEUED
    waiting = asyncio.create_task(rt.invocations.wait(made.id, 30))
    await rt.invocations.report(DEVICE, "acme:lamp", made.id, {"status": "running"})
    await asyncio.sleep(0)
    assert not waiting.done()
    await rt.invocations.report(DEVICE, "acme:lamp", made.id, {"status": "succeeded"})
    final = await asyncio.wait_for(waiting, 10)
    assert final.status is Status.SUCCEEDED
    with pytest.raises(NotFound):
        await rt.invocations.wait("inv-none", 1)


async def test_cancel_and_listing_by_status_rollout_and_namespace(rt: Runtime) -> None:
    await _lamp(rt)
    await _lamp(rt, "beta:lamp")
    a = await rt.invocations.create(CTX, "acme:lamp", "reboot", None)
    b = await rt.invocations.create(CTX, "beta:lamp", "reboot", None)
    cancelled = await rt.invocations.cancel(CTX, a.id)
    assert cancelled.status is Status.CANCELLED
    limited = Context(Actor("ops", role="operator", namespaces=("beta",)))
    with pytest.raises(NotFound):
        await rt.invocations.cancel(limited, a.id)
    assert [i.id for i in await rt.invocations.list(status=[Status.CANCELLED])] == [a.id]
    assert [i.id for i in await rt.invocations.list(namespaces=("beta",))] == [b.id]
    assert [i.id for i in await rt.invocations.list(after=a.id)] == [b.id]
    assert [i.id for i in await rt.invocations.list(limit=1)] == [a.id]

    def unit(tx: Any) -> str:
        thing = tx.existing("acme:lamp")
        made = rt.invocations.create_in(
            tx, CTX, thing, "reboot", None, ttl_s=None, rollout_id="ro-1", now_us=tx.ts_us
        )
        return made.id

    rolled = await rt.store.write(unit)
    assert [i.id for i in await rt.invocations.list(rollout_id="ro-1")] == [rolled]


async def test_quarantine_and_deletion_cancel_what_is_open(rt: Runtime) -> None:
    """Nothing queued before reaches the Thing once released, nor a later Thing of its id."""
    await _lamp(rt)
    queued = await rt.invocations.create(CTX, "acme:lamp", "reboot", None)
    running = await rt.invocations.create(CTX, "acme:lamp", "reboot", None)
    await rt.invocations.report(DEVICE, "acme:lamp", running.id, {"status": "running"})
    done = await rt.invocations.create(CTX, "acme:lamp", "reboot", None)
    await rt.invocations.report(DEVICE, "acme:lamp", done.id, {"status": "succeeded"})
    await rt.quarantine.quarantine(CTX, "acme:lamp", {"reason": "odd traffic"})
    got = await rt.invocations.many([queued.id, running.id, done.id])
    assert [got[i.id].status for i in (queued, running, done)] == [
        Status.CANCELLED,
        Status.CANCELLED,
        Status.SUCCEEDED,
    ]
    events = await rt.journal.feed(0, 100, kinds=["invocation"])
    assert events[-1]["cause"] == "the Thing acme:lamp was quarantined: odd traffic"

    await _lamp(rt, "acme:gone")
    doomed = await rt.invocations.create(CTX, "acme:gone", "reboot", None)
    await rt.registry.delete(CTX, "acme:gone")
    await _lamp(rt, "acme:gone")
    assert await rt.invocations.pending("acme:gone") == []
    assert (await rt.invocations.get(doomed.id)).status is Status.CANCELLED
    assert (await rt.journal.verify()).ok


async def test_inputs_and_outputs_are_bounded(rt: Runtime) -> None:
    await _lamp(rt)
    big = {"blob": "x" * (64 * 1024)}
    with pytest.raises(InvalidInput) as caught:
        await rt.invocations.create(CTX, "acme:lamp", "reboot", big)
    assert caught.value.extra["field"] == "/input"
    made = await rt.invocations.create(CTX, "acme:lamp", "reboot", {"blob": "x"})
    refused = await rt.invocations.report(
        DEVICE, "acme:lamp", made.id, {"status": "succeeded", "output": big}
    )
    assert refused is None and rt.stats.rejected["invocation_result_malformed"] == 1
    assert (await rt.invocations.get(made.id)).status is Status.QUEUED


async def test_any_json_value_is_an_input_or_an_output(rt: Runtime) -> None:
    """Scalars too (a JSON column on SQLite would store `5` as an integer and fail to read
    it back as JSON)."""
    await _lamp(rt)
    for value in (5, 1.5, "on", True, None, [1, "a"], {"k": [None]}):
        made = await rt.invocations.create(CTX, "acme:lamp", "reboot", value)
        assert (await rt.invocations.get(made.id)).input == value
        await rt.invocations.delivered(CTX, [made.id])
        done = await rt.invocations.report(
            DEVICE, "acme:lamp", made.id, {"status": "succeeded", "output": value}
        )
        assert done is not None
        assert (await rt.invocations.many([made.id]))[made.id].output == value
