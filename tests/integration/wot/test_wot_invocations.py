"""An adopted WoT Thing's actions, invoked from the queue through its TD: run in order when
the worker gets them, retried with backoff while the Thing is unreachable, succeeded once it
answers again; expired (and never invoked) when its ttl passes first. On SQLite and
PostgreSQL, with the real API and a real HTTP Thing on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from integration.api.test_adoption import PASSWORD, Thermostat
from integration.mqtt.mqtt_support import eventually
from iotas.domain import clock
from iotas.domain.invocations import FINAL, Invocation, Status
from iotas.runtime.node import Runtime
from iotas.services.context import Actor, Context
from support import LiveServer, live_server

OPERATOR = Context(Actor("test", role="admin"), "test")
THING = "acme:thermostat-9"


class Served:
    """The thermostat's HTTP server, which a test can stop and start again on its port."""

    def __init__(self, thing: Thermostat) -> None:
        self.thing = thing
        self.boosts = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        app = self.thing.app()
        served = self

        async def counting(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] == "/actions/boost":
                served.boosts += 1
            await app(scope, receive, send)

        config = uvicorn.Config(
            counting, host="127.0.0.1", port=self.thing.port, log_level="warning"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        await eventually(lambda: self._server is not None and self._server.started)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)
            self._server = self._task = None


@pytest.fixture
async def node(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[LiveServer, Runtime]]:
    async with live_server(database_url, tmp_path / "data") as (live, app):
        yield live, app.state.runtime


@pytest.fixture
async def thermostat() -> AsyncIterator[Served]:
    from support import free_port

    served = Served(Thermostat(free_port()))
    await served.start()
    yield served
    await served.stop()


async def adopted(live: LiveServer, served: Served) -> None:
    response = await live.client.post(
        "/api/v1/adoptions",
        json={
            "td_url": f"{served.thing.base}/td",
            "id": THING,
            "poll_interval": 0.5,
            "credentials": {"username": "admin", "password": PASSWORD},
        },
    )
    assert response.status_code == 201, response.text


async def ended(rt: Runtime, invocation_id: str, timeout: float = 20) -> Invocation:
    async def final() -> Invocation | None:
        found = await rt.invocations.get(invocation_id)
        return found if found.status in FINAL else None

    done: Invocation = await eventually(final, timeout=timeout)
    return done


async def test_invoked_from_the_queue_in_order_and_retried_while_unreachable(
    node: tuple[LiveServer, Runtime], thermostat: Served
) -> None:
    live, rt = node
    await adopted(live, thermostat)
    first = await rt.invocations.create(OPERATOR, THING, "boost", 1.5)
    second = await rt.invocations.create(OPERATOR, THING, "boost", 2.0)
    one, two = await ended(rt, first.id), await ended(rt, second.id)
    assert (one.status, one.output) == (Status.SUCCEEDED, 21.0)  # 19.5 + 1.5, then + 2.0
    assert (two.status, two.output) == (Status.SUCCEEDED, 23.0)

    await thermostat.stop()
    waiting = await rt.invocations.create(OPERATOR, THING, "boost", 1.0)

    async def retried() -> bool:
        found = await rt.invocations.get(waiting.id)
        return found.status == Status.DELIVERED and found.attempts >= 2

    await eventually(retried, timeout=20)
    await thermostat.start()
    back = await ended(rt, waiting.id, timeout=90)  # the backoff may have grown to 8-16 s
    assert (back.status, back.output) == (Status.SUCCEEDED, 24.0)

    history = (await live.client.get(f"/api/v1/things/{THING}/history?limit=1000")).json()
    attempts = [e["patch"] for e in history["items"] if e["type"] == "adapter_attempt"]
    invokes = [a for a in attempts if a["op"] == "invokeaction"]
    assert [a["outcome"] for a in invokes].count("succeeded") == 3
    assert any(a["outcome"] == "failed" for a in invokes)


async def test_an_invocation_whose_ttl_passes_while_unreachable_expires_uninvoked(
    node: tuple[LiveServer, Runtime], thermostat: Served
) -> None:
    live, rt = node
    await adopted(live, thermostat)
    await thermostat.stop()
    boosts = thermostat.boosts
    late = await rt.invocations.create(OPERATOR, THING, "boost", 1.0, ttl_s=1)
    await eventually(lambda: clock.now_us() > late.expires_us + 1_000_000)
    await thermostat.start()
    await rt.invocations.expire_due(clock.now_us())  # the sweep, now rather than in a while
    gone = await ended(rt, late.id)
    assert gone.status == Status.EXPIRED
    assert thermostat.boosts == boosts  # never reached the Thing once it was back
