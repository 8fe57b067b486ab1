"""A live iotas whose app the test can reach (to record a Thing's event as a device's MQTT
message would), with settings of the test's choosing, and a native device Thing with desired
and reported state, telemetry and a model that declares data schemas and an event."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from iotas.services.context import Actor, Context
from iotas.settings import Settings
from support import LiveServer, free_port

THING = "acme:lamp-1"
MODEL = {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    "title": "Lamp",
    "properties": {
        "brightness": {"type": "integer", "minimum": 0, "maximum": 100},
        "status": {"type": "string", "readOnly": True},
    },
    "events": {"overheat": {"data": {"type": "object"}}},
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
    from iotas.api.app import create_app

    running: list[tuple[uvicorn.Server, asyncio.Task[None], httpx.AsyncClient]] = []

    async def start(**overrides: Any) -> Live:
        token = "iotas_test_" + secrets.token_urlsafe(24)
        settings = Settings(
            data_dir=tmp_path / "data",
            database_url=database_url,
            port=free_port(),
            admin_token=token,
            log_level="warning",
            auth_failure_burst=1e9,
        )
        settings = replace(settings, **overrides)
        app = create_app(settings)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
        uv = uvicorn.Server(config)
        task = asyncio.create_task(uv.serve())
        for _ in range(1000):
            if uv.started or task.done():
                break
            await asyncio.sleep(0.01)
        if not uv.started:
            task.result()
            raise RuntimeError("the test server did not start")
        url = f"http://127.0.0.1:{settings.port}"
        client = httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        running.append((uv, task, client))
        return Live(LiveServer(url, token, settings, client), app)

    yield start
    for uv, task, client in running:
        await client.aclose()
        uv.should_exit = True
        await task


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
