"""The streams a native Thing's TD offers: per property and per event, each carrying the
property's value or the event's own data (not the journal's envelope), as a long poll and as
Server-Sent Events; and stream tickets, how an EventSource client (no headers) opens one."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from httpx_sse import aconnect_sse

from peer_support import NODE_WOT, node_with

from .conftest import THING, Live, Start, make_lamp

API = f"/api/v1/things/{THING}"


async def _lamp(start_iotas: Start) -> Live:
    live = await start_iotas()
    await make_lamp(live.server.client)
    return live


@contextlib.asynccontextmanager
async def sse(
    client: httpx.AsyncClient, path: str, **kw: Any
) -> AsyncIterator[asyncio.Queue[tuple[str, Any]]]:
    """Each message of the stream at `path` as (id, data), on a queue, while open."""
    received: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    opened = asyncio.Event()

    async def read() -> None:
        async with aconnect_sse(client, "GET", path, timeout=None, **kw) as source:
            assert source.response.status_code == 200, await source.response.aread()
            opened.set()
            async for message in source.aiter_sse():
                if not message.data:
                    continue  # `retry:` alone (httpx-sse passes it on; EventSource does not)
                assert message.event == "message"  # no name: EventSource's onmessage fires
                received.put_nowait((message.id, orjson.loads(message.data)))

    task = asyncio.create_task(read())
    done, _ = await asyncio.wait(
        [task, asyncio.create_task(opened.wait())], timeout=10, return_when=asyncio.FIRST_COMPLETED
    )
    if task in done:
        task.result()
    try:
        yield received
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def next_on(queue: asyncio.Queue[tuple[str, Any]]) -> tuple[str, Any]:
    return await asyncio.wait_for(queue.get(), 15)


async def test_property_stream_carries_the_new_value(start_iotas: Start) -> None:
    live = await _lamp(start_iotas)
    c = live.server.client
    await c.patch(f"{API}/twin/reported", json={"cfg": {"a": 1, "b": 2}})
    async with (
        sse(c, f"{API}/properties/brightness/stream") as bright,
        sse(c, f"{API}/properties/cfg/stream") as cfg,
    ):
        await c.patch(f"{API}/twin/reported", json={"on": False})  # another property
        await c.patch(f"{API}/twin/reported", json={"brightness": 33})
        seq, value = await next_on(bright)
        assert value == 33 and int(seq) > 0
        # A merge patch of an object changes part of it: the stream gives the whole value.
        await c.patch(f"{API}/twin/reported", json={"cfg": {"b": 3}})
        assert (await next_on(cfg))[1] == {"a": 1, "b": 3}
        assert bright.empty()
    # Resumed after the seq it last saw, it is given what came since.
    await c.patch(f"{API}/twin/reported", json={"brightness": 34})
    async with sse(
        c, f"{API}/properties/brightness/stream", headers={"Last-Event-ID": seq}
    ) as again:
        assert (await next_on(again))[1] == 34


async def test_event_streams_carry_the_events_own_data(start_iotas: Start) -> None:
    live = await _lamp(start_iotas)
    c = live.server.client
    async with (
        sse(c, f"{API}/events/overheat/stream") as overheat,
        sse(c, f"{API}/events/telemetry/stream") as telemetry,
    ):
        await live.device_event(THING, "tilt", {"deg": 4})  # another event
        await live.device_event(THING, "overheat", {"t": 91})
        assert (await next_on(overheat))[1] == {"t": 91}
        posted = await c.post(
            f"{API}/telemetry", json=[{"ts": "2026-11-22T08:00:00Z", "temp": 21.5, "hum": 40}]
        )
        assert posted.status_code == 202
        seq, record = await next_on(telemetry)
        assert seq == ""  # live only: nothing to resume from
        assert record == {"ts": "2026-11-22T08:00:00.000000Z", "temp": 21.5, "hum": 40}
        assert overheat.empty()


async def test_long_polls_answer_the_next_value(start_iotas: Start) -> None:
    live = await _lamp(start_iotas)
    c = live.server.client
    # node-wot's handshake: a HEAD, answered at once.
    for path in ("properties/brightness/next", "events/overheat/next", "events/telemetry/next"):
        head = await c.head(f"{API}/{path}")
        assert head.status_code == 200, (path, head.text)
    waiting = asyncio.create_task(c.get(f"{API}/properties/brightness/next", timeout=30))
    event = asyncio.create_task(c.get(f"{API}/events/overheat/next", timeout=30))
    for value in range(40, 80):
        await c.patch(f"{API}/twin/reported", json={"brightness": value})
        await live.device_event(THING, "overheat", {"t": value})
        done, _ = await asyncio.wait([waiting, event], timeout=0.5)
        if len(done) == 2:
            break
    answer, occurred = waiting.result(), event.result()
    assert answer.status_code == 200 and 40 <= answer.json() < 80
    assert occurred.status_code == 200 and occurred.json()["t"] in range(40, 80)
    # A client that will wait only so long says so (RFC 7240): 204 when nothing came.
    # A wait that is not delta-seconds is ignored (the byte 0xB2 is "²" in Latin-1, which
    # passes str.isdigit: it was a 500).
    for path in ("properties/brightness/next", "events/telemetry/next"):
        prefer = {b"Prefer": b"wait=\xb2, wait=1"}
        quiet = await c.get(f"{API}/{path}", headers=prefer, timeout=30)
        assert quiet.status_code == 204, (path, quiet.text)
    missing = await c.get("/api/v1/things/acme:nope/properties/x/next")
    assert missing.status_code == 404


async def test_a_deleted_thing_ends_its_streams(start_iotas: Start) -> None:
    live = await _lamp(start_iotas)
    c = live.server.client
    waiting = asyncio.create_task(c.get(f"{API}/properties/brightness/next", timeout=30))
    async with aconnect_sse(c, "GET", f"{API}/events/overheat/stream", timeout=30) as source:
        assert source.response.status_code == 200
        assert (await c.delete(API)).status_code == 204
        async for message in source.aiter_sse():
            assert not message.data  # (only the `retry:` preamble) and then the end
    answer = await waiting
    assert answer.status_code == 404, answer.text


async def test_stream_tickets(start_iotas: Start, monkeypatch: pytest.MonkeyPatch) -> None:
    live = await _lamp(start_iotas)
    c = live.server.client
    anonymous = live.server.anonymous()
    stream = f"{API}/properties/brightness/stream"
    refused = await anonymous.get(stream)
    assert refused.status_code == 401

    got = await c.get(f"{API}/stream-ticket")
    assert got.status_code == 200 and got.headers["cache-control"] == "no-store"
    ticket = got.json()["ticket"]
    assert live.server.token not in ticket
    async with sse(anonymous, stream, params={"ticket": ticket}) as values:
        await c.patch(f"{API}/twin/reported", json={"brightness": 12})
        assert (await next_on(values))[1] == 12

    # Only for this Thing's streams, only as issued, not for other routes.
    await c.post("/api/v1/things", json={"id": "acme:other", "kind": "lamp"})
    other = await anonymous.get(
        "/api/v1/things/acme:other/properties/x/stream", params={"ticket": ticket}
    )
    assert other.status_code == 401 and "problem+json" in other.headers["content-type"]
    tampered = ticket[:-6] + ("AAAAAA" if not ticket.endswith("AAAAAA") else "BBBBBB")
    assert (await anonymous.get(stream, params={"ticket": tampered})).status_code == 401
    assert (await anonymous.get(API, params={"ticket": ticket})).status_code == 401

    # Expired: a ticket lives TICKET_SECONDS.
    monkeypatch.setattr("iotas.api.stream_tickets.TICKET_SECONDS", -1)
    stale = (await c.get(f"{API}/stream-ticket")).json()["ticket"]
    assert (await anonymous.get(stream, params={"ticket": stale})).status_code == 401
    monkeypatch.undo()

    # A revoked token's tickets stop opening streams.
    made = await c.post("/api/v1/tokens", json={"subject": "dash", "role": "viewer"})
    assert made.status_code == 201, made.text
    viewer = httpx.AsyncClient(
        base_url=live.server.url, headers={"Authorization": f"Bearer {made.json()['token']}"}
    )
    async with viewer:
        ticket = (await viewer.get(f"{API}/stream-ticket")).json()["ticket"]
    assert (await c.delete(f"/api/v1/tokens/{made.json()['id']}")).status_code == 204
    revoked = await anonymous.get(stream, params={"ticket": ticket})
    assert revoked.status_code == 401, revoked.text
    await anonymous.aclose()


@pytest.mark.wot_runtime
async def test_node_wot_eventsource_opens_a_stream_with_a_ticket(start_iotas: Start) -> None:
    """The EventSource client node-wot uses for `sse` forms, as a browser would use one."""
    node = node_with("eventsource")
    live = await _lamp(start_iotas)
    c = live.server.client
    ticket = (await c.get(f"{API}/stream-ticket")).json()["ticket"]
    url = f"{live.server.url}{API}/events/telemetry/stream?ticket={ticket}"
    process = await asyncio.create_subprocess_exec(
        node, "eventsource.js", url, cwd=NODE_WOT, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 15)
        assert line.strip() == b"OPEN", line
        data = None
        for _ in range(30):  # until the stream has taken its reader
            await c.post(f"{API}/telemetry", json={"temp": 18.0})
            with contextlib.suppress(TimeoutError):
                line = await asyncio.wait_for(process.stdout.readline(), 0.5)
                assert line.startswith(b"DATA "), line
                data = orjson.loads(line[5:])
                break
        assert data is not None and data["temp"] == 18.0
    finally:
        process.kill()
        await process.wait()
