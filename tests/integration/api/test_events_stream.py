"""Server-Sent Events: ids are seqs, filters apply, a resumed stream loses and repeats nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson

from support import LiveServer


async def _read(
    client: httpx.AsyncClient,
    count: int,
    *,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    ready: asyncio.Event | None = None,
) -> list[dict[str, Any]]:
    """Read `count` events from the stream, then drop the connection. `ready` is set once
    the answer's headers are in: the stream's starting point is fixed by then."""
    events: list[dict[str, Any]] = []

    async def consume() -> None:
        async with client.stream("GET", "/api/v1/events", params=params, headers=headers) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            if ready is not None:
                ready.set()
            frame: dict[str, str] = {}
            async for line in r.aiter_lines():
                if line == "":
                    if "data" in frame:
                        event = orjson.loads(frame["data"])
                        assert frame["id"] == str(event["seq"])
                        assert frame["event"] == event["type"]
                        events.append(event)
                        if len(events) == count:
                            return
                    frame = {}
                elif not line.startswith(":"):
                    key, _, value = line.partition(":")
                    frame[key] = value.strip()

    await asyncio.wait_for(consume(), timeout)
    return events


async def test_stream_filters_and_resumes_without_loss_or_repeat(server: LiveServer) -> None:
    c = server.client
    await c.post("/api/v1/things", json={"id": "acme:a", "kind": "pump"})
    await c.post("/api/v1/things", json={"id": "acme:b", "kind": "sensor"})

    async def writes() -> None:
        for i in range(30):
            await c.patch(f"/api/v1/things/acme:{'ab'[i % 2]}/twin/reported", json={"n": i})

    # Live: a reader from the start sees every event in order while writes happen.
    reader = asyncio.create_task(_read(c, 32, params={"after": 0}))
    await writes()
    everything = await reader
    assert [e["seq"] for e in everything] == list(range(1, 33))

    # Resume after a drop: first half, then Last-Event-ID, no gap and no duplicate.
    first = await _read(c, 10, params={"after": 0})
    rest = await _read(c, 22, headers={"Last-Event-ID": str(first[-1]["seq"])})
    assert [e["seq"] for e in first + rest] == list(range(1, 33))

    # Filters: by type, and by query on the Thing.
    created = await _read(c, 2, params={"after": 0, "types": "thing_created"})
    assert [e["thing_id"] for e in created] == ["acme:a", "acme:b"]
    pumps = await _read(c, 16, params={"after": 0, "q": 'kind == "pump"'})
    assert {e["thing_id"] for e in pumps} == {"acme:a"}


async def test_stream_without_a_start_only_shows_new_events(server: LiveServer) -> None:
    c = server.client
    await c.post("/api/v1/things", json={"id": "acme:a", "kind": "pump"})
    ready = asyncio.Event()
    reader = asyncio.create_task(_read(c, 1, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    await c.delete("/api/v1/things/acme:a")
    (event,) = await reader
    assert event["type"] == "thing_deleted" and event["seq"] == 2


async def test_invocation_events_stream_with_kind(server: LiveServer) -> None:
    """`?kind=invocation`: each invocation's creation and moves, as they are committed."""
    c = server.client
    model: dict[str, Any] = {"actions": {"reboot": {}}}
    await c.post("/api/v1/things", json={"id": "acme:a", "kind": "pump", "description": model})
    ready = asyncio.Event()
    reading = asyncio.create_task(
        _read(c, 2, params={"kind": "invocation"}, ready=ready, timeout=20)
    )
    await asyncio.wait_for(ready.wait(), 10)
    made = (await c.post("/api/v1/things/acme:a/actions/reboot", json={})).json()
    await c.post(f"/api/v1/invocations/{made['id']}/cancel")
    events = await reading
    assert [(e["kind"], e["record_id"], e["type"]) for e in events] == [
        ("invocation", made["id"], "invocation_created"),
        ("invocation", made["id"], "invocation_changed"),
    ]
    assert events[1]["patch"] == {"status": "cancelled"}
    refused = await c.get("/api/v1/events", params={"kind": "invocation", "q": 'kind == "x"'})
    assert refused.status_code == 400
    wrong = await c.get("/api/v1/events", params={"kind": "invocation", "types": "thing_created"})
    assert wrong.status_code == 400 and "invocation_created" in wrong.json()["detail"]
