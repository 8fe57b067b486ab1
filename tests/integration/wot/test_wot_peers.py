"""Adopting real WoT Things (wotpy and node-wot lamps) by their TD URLs: their property
values in the twin, desired changes followed through their own APIs, actions, changes made
outside iotas, and every change in the journal; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from support import LiveServer
from td_check import assert_valid_td

from .conftest import Peer


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {within} s")


async def _exercise(server: LiveServer, peer: Peer, thing_id: str) -> None:
    c = server.client
    adopted = await c.post(
        "/api/v1/adoptions", json={"td_url": peer.td_url, "id": thing_id, "poll_interval": 1}
    )
    assert adopted.status_code == 201, adopted.text
    thing = f"/api/v1/things/{thing_id}"

    async def twin() -> dict[str, Any]:
        body: dict[str, Any] = (await c.get(f"{thing}/twin")).json()
        return body

    async def read() -> bool:
        return bool((await twin())["reported"] == {"brightness": 50, "on": False, "status": "ok"})

    await eventually(read)
    assert_valid_td(adopted.json()["thing"]["description"])

    # Desired state is written through the Thing's own API and read back.
    await c.patch(f"{thing}/twin/desired", json={"brightness": 80, "on": True})

    async def synced() -> bool:
        current = await twin()
        return bool(current["status"] == "in_sync" and current["reported"]["brightness"] == 80)

    await eventually(synced)
    assert await peer.value("brightness") == 80 and await peer.value("on") is True

    # Changed outside iotas: seen (observed or polled), journaled, and put back.
    await peer.command("set brightness 10")

    async def restored() -> bool:
        return bool(await peer.value("brightness") == 80 and (await twin())["status"] == "in_sync")

    await eventually(restored)
    # A read-only property changes on its own: reported follows, nothing is written.
    await peer.command('set status "warm"')

    async def status() -> bool:
        return bool((await twin())["reported"]["status"] == "warm")

    await eventually(status)

    # An action through the TD, queued and run by the WoT worker (node-wot and wotpy both
    # answer the new value of `on`).
    result = await c.post(f"{thing}/actions/toggle", json={})
    assert result.status_code == 202 and result.json()["status"] == "queued", result.text
    ended = (await c.get(result.headers["Location"], params={"wait": 20})).json()
    assert (ended["status"], ended["output"]) == ("succeeded", False), ended

    items = (await c.get(f"{thing}/history", params={"limit": 1000})).json()["items"]
    patches = [(e["type"], e["patch"]) for e in items]
    assert ("reported_changed", {"brightness": 10}) in patches
    assert ("reported_changed", {"status": "warm"}) in patches
    writes = [p for t, p in patches if t == "adapter_attempt" and p["op"] == "writeproperty"]
    assert {(w["name"], w["value"]) for w in writes} >= {("brightness", 80), ("on", True)}
    assert all(w["outcome"] == "succeeded" for w in writes)
    assert any(t == "adapter_attempt" and p["op"] == "invokeaction" for t, p in patches)
    assert (await c.get("/api/v1/journal/verify")).json()["ok"] is True


async def test_wotpy_lamp_is_adopted_and_managed(server: LiveServer, wotpy_lamp: Peer) -> None:
    await _exercise(server, wotpy_lamp, "acme:wotpy-lamp")


async def test_node_wot_lamp_is_adopted_and_managed(
    server: LiveServer, node_wot_lamp: Peer
) -> None:
    await _exercise(server, node_wot_lamp, "acme:node-wot-lamp")


@pytest.mark.parametrize("op", ["read", "write"])
async def test_wotpy_over_coap(wotpy_lamp: Peer, op: str) -> None:
    """The CoAP forms of a real Thing, straight through iotas' WoT client."""
    from iotas.adapters.wot.client import WotClient
    from iotas.domain import td
    from iotas.domain.td_model import Form, Interactions, PropertyAffordance

    client = WotClient(timeout=5)
    try:
        doc = await client.fetch_td(wotpy_lamp.td_url)
        things = td.interactions(td.validate_td(doc))
        coap_only = {
            name: PropertyAffordance(
                name, p.schema, tuple(f for f in p.forms if f.scheme == "coap"), p.read_only
            )
            for name, p in things.properties.items()
        }
        things = Interactions(
            things.id,
            things.title,
            things.base,
            things.security,
            things.security_definitions,
            coap_only,
            {},
            {},
        )
        assert all(isinstance(f, Form) for f in coap_only["brightness"].forms)
        if op == "read":
            assert await client.read_property(things, "brightness") == 50
        else:
            await client.write_property(things, "brightness", 33)
            assert await wotpy_lamp.value("brightness") == 33
    finally:
        await client.aclose()


async def test_wotpy_quirk_a_put_on_a_read_only_property_never_answers(
    server: LiveServer, wotpy_lamp: Peer
) -> None:
    """wotpy's forms offer writeproperty even for its read-only `status`, and a PUT there never
    answers. iotas does not write read-only properties (the desired key stays in the delta,
    nothing hangs, the rest is written); and where a write does go out, the client's deadline
    ends it with a clear error."""
    c = server.client
    thing = "/api/v1/things/acme:wotpy-lamp"
    adopted = await c.post(
        "/api/v1/adoptions",
        json={"td_url": wotpy_lamp.td_url, "id": "acme:wotpy-lamp", "poll_interval": 1},
    )
    assert adopted.status_code == 201, adopted.text
    await c.patch(f"{thing}/twin/desired", json={"status": "forced", "brightness": 5})

    async def written() -> bool:
        return bool((await c.get(f"{thing}/twin")).json()["reported"].get("brightness") == 5)

    await eventually(written)
    assert await wotpy_lamp.value("brightness") == 5
    twin = (await c.get(f"{thing}/twin")).json()
    assert twin["delta"] == {"status": "forced"} and twin["status"] == "pending"
    items = (await c.get(f"{thing}/history", params={"limit": 500})).json()["items"]
    assert not [
        e for e in items if e["type"] == "adapter_attempt" and e["patch"]["name"] == "status"
    ]

    from iotas.adapters.wot.client import WotClient
    from iotas.adapters.wot.errors import ThingUnreachable
    from iotas.domain import td

    client = WotClient(timeout=1.5)
    try:
        things = td.interactions(await client.fetch_td(wotpy_lamp.td_url))
        started = time.monotonic()
        with pytest.raises(ThingUnreachable, match=r"did not answer within 1\.5 s"):
            await client.write_property(things, "status", "forced")
        assert time.monotonic() - started < 3
    finally:
        await client.aclose()


async def test_wotpy_lamp_managed_over_coap_alone(server: LiveServer, wotpy_lamp: Peer) -> None:
    """The same lamp, adopted from its TD with every form but the CoAP ones removed: read,
    observed and written through CoAP (aiocoap) only."""
    import httpx

    async with httpx.AsyncClient(timeout=5) as plain:
        doc = (await plain.get(wotpy_lamp.td_url)).json()
    for kind in ("properties", "actions", "events"):
        for affordance in doc.get(kind, {}).values():
            affordance["forms"] = [f for f in affordance["forms"] if f["href"].startswith("coap")]
    c = server.client
    thing = "/api/v1/things/acme:coap-lamp"
    adopted = await c.post(
        "/api/v1/adoptions", json={"td": doc, "id": "acme:coap-lamp", "poll_interval": 1}
    )
    assert adopted.status_code == 201, adopted.text

    async def read() -> bool:
        reported = (await c.get(f"{thing}/twin")).json()["reported"]
        return bool(reported == {"brightness": 50, "on": False, "status": "ok"})

    await eventually(read)
    await c.patch(f"{thing}/twin/desired", json={"brightness": 64})

    async def synced() -> bool:
        return bool((await c.get(f"{thing}/twin")).json()["status"] == "in_sync")

    await eventually(synced)
    assert await wotpy_lamp.value("brightness") == 64
    await wotpy_lamp.command('set status "cool"')

    async def seen() -> bool:
        return bool((await c.get(f"{thing}/twin")).json()["reported"]["status"] == "cool")

    await eventually(seen)
