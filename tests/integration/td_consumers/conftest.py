"""A live iotas whose app the test can reach (to record a Thing's event as a device's MQTT
message would), with settings of the test's choosing, and a native device Thing with desired
and reported state, telemetry and a model that declares data schemas, an event and an
action."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from iotas.services.context import Actor, Context
from support import LiveServer, live_server

THING = "acme:lamp-1"
MODEL = {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    "title": "Lamp",
    "properties": {
        "brightness": {"type": "integer", "minimum": 0, "maximum": 100},
        "status": {"type": "string", "readOnly": True},
    },
    "events": {"overheat": {"data": {"type": "object"}}},
    # An action, so that every test here also reads a TD with an action form.
    "actions": {"toggle": {"output": {"type": "boolean"}}},
}


@dataclass
class Live:
    server: LiveServer
    app: Any

    async def device_event(self, thing_id: str, name: str, data: Any) -> None:
        """What iotas does with `things/{id}/events/{name}` from the device."""
        ctx = Context(Actor(thing_id, role="device"), "mqtt events")
        await self.app.state.runtime.registry.record_event(ctx, thing_id, name, data)


Start = Callable[..., Awaitable[Live]]


@pytest.fixture
async def start_iotas(database_url: str, tmp_path: Path) -> AsyncIterator[Start]:
    """Start iotas (once per test) with `Settings` overrides; every server is stopped after."""
    async with AsyncExitStack() as running:

        async def start(**overrides: Any) -> Live:
            server, app = await running.enter_async_context(
                live_server(database_url, tmp_path / "data", **overrides)
            )
            return Live(server, app)

        yield start


async def make_lamp(c: httpx.AsyncClient) -> None:
    """A native Thing with a model, desired and reported state."""
    created = await c.post(
        "/api/v1/things",
        json={"id": THING, "kind": "lamp", "attributes": {"title": "Lamp 1"}, "description": MODEL},
    )
    assert created.status_code == 201, created.text
    await c.patch(f"/api/v1/things/{THING}/twin/desired", json={"brightness": 20, "on": True})
    await c.patch(
        f"/api/v1/things/{THING}/twin/reported",
        json={"brightness": 20, "on": True, "status": "ok", "fw": "1.0"},
    )
