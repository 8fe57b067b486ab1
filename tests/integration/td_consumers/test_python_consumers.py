"""Python TD consumers use iotas' own TDs through their forms: thingctx 0.3 checks the TD
against the TD 1.1 schema and reads and writes; wotpy 0.18's HTTP client reads, observes a
property and subscribes to the `telemetry` event (long poll, with the TD's bearer scheme)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest
from thingctx import HttpBinding, ThingClient
from wotpy.protocols.http.client import HTTPClient
from wotpy.wot.td import ThingDescription

from .conftest import THING, Start, make_lamp

pytestmark = [pytest.mark.wot_runtime, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


async def _td(start_iotas: Start) -> tuple[Any, dict[str, Any]]:
    live = await start_iotas()
    await make_lamp(live.server.client)
    found = await live.server.client.get(f"/tdd/things/{THING}")
    assert found.status_code == 200, found.text
    return live, found.json()


async def test_thingctx_validates_reads_and_writes(start_iotas: Start) -> None:
    live, td = await _td(start_iotas)
    binding = HttpBinding(credentials={"bearer": live.server.token})
    client = ThingClient(tds=[td], bindings=[binding], validate=True)
    try:
        assert await client.read_property("lamp-1__brightness") == 20
        assert await client.read_property("lamp-1__fw") == "1.0"
        await client.write_property("lamp-1__brightness", 55)
        twin = (await live.server.client.get(f"/api/v1/things/{THING}/twin")).json()
        assert twin["desired"]["brightness"] == 55
        # thingctx refuses what the TD says is wrong before sending it.
        refused = await client.write_property("lamp-1__brightness", 500)
        assert "error" in refused, refused
        refused = await client.write_property("lamp-1__status", "hot")
        assert "error" in refused, refused
    finally:
        with contextlib.suppress(Exception):
            await binding.aclose()


async def test_wotpy_client_reads_observes_and_subscribes(start_iotas: Start) -> None:
    live, td = await _td(start_iotas)
    c = live.server.client
    thing = ThingDescription(td)
    http = HTTPClient()
    # Generic consumer code: the credential goes with the TD's own security scheme.
    http.set_security(td["securityDefinitions"][td["security"][0]], {"token": live.server.token})
    assert await http.read_property(thing, "brightness") == 20

    seen: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    observing = http.on_property_change(thing, "brightness").subscribe(
        lambda item: seen.put_nowait(("brightness", item.data.value))
    )
    events = http.on_event(thing, "telemetry").subscribe(
        lambda item: seen.put_nowait(("telemetry", item.data))
    )
    try:
        got: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        value, sent = 60, set()
        while len(got) < 2 and time.monotonic() < deadline:
            # Long polls: whatever comes between two requests is missed, so keep at it.
            if "brightness" not in got:
                value += 1
                sent.add(value)
                await c.patch(f"/api/v1/things/{THING}/twin/reported", json={"brightness": value})
            if "telemetry" not in got:
                await c.post(f"/api/v1/things/{THING}/telemetry", json={"temp": 19.5})
            with contextlib.suppress(TimeoutError):
                name, data = await asyncio.wait_for(seen.get(), 1)
                got[name] = data
        assert got["brightness"] in sent, got
        assert got["telemetry"]["temp"] == 19.5 and "ts" in got["telemetry"], got
    finally:
        observing.dispose()
        events.dispose()
