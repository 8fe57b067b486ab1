"""A quarantined adopted Thing is hands-off: the WoT adapter writes nothing to it, even when a
desired change is still pending and the Thing starts taking writes again. Real HTTP Thing on
loopback, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from support import LiveServer, free_port

THING = "/api/v1/things/acme:valve-q"


@dataclass
class Valve:
    """A Thing with one writable property that refuses writes (503) while `refusing`."""

    port: int
    opening: float = 10.0
    refusing: bool = True
    reads: int = 0
    writes: list[tuple[float, bool]] = field(default_factory=list)  # (value, accepted)

    def td(self) -> dict[str, Any]:
        return {
            "@context": "https://www.w3.org/2022/wot/td/v1.1",
            "id": f"urn:test:valve:{self.port}",
            "title": "Valve",
            "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
            "security": ["nosec_sc"],
            "properties": {
                "opening": {
                    "type": "number",
                    "forms": [{"href": f"http://127.0.0.1:{self.port}/opening"}],
                }
            },
        }

    def app(self) -> Starlette:
        async def td(request: Request) -> Response:
            return JSONResponse(self.td(), media_type="application/td+json")

        async def opening(request: Request) -> Response:
            if request.method == "PUT":
                value = orjson.loads(await request.body())
                self.writes.append((value, not self.refusing))
                if self.refusing:
                    return Response(status_code=503)
                self.opening = value
                return Response(status_code=204)
            self.reads += 1
            return JSONResponse(self.opening)

        return Starlette(
            routes=[Route("/td", td), Route("/opening", opening, methods=["GET", "PUT"])]
        )


@pytest.fixture
async def valve() -> AsyncIterator[Valve]:
    thing = Valve(free_port())
    server = uvicorn.Server(
        uvicorn.Config(thing.app(), host="127.0.0.1", port=thing.port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "the valve did not start"
        await asyncio.sleep(0.02)
    yield thing
    server.should_exit = True
    await asyncio.wait_for(task, 10)


async def until(check: Callable[[], Awaitable[bool] | bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {within} s")


async def test_nothing_is_written_to_a_quarantined_adopted_thing(
    server: LiveServer, valve: Valve
) -> None:
    c = server.client
    adopted = await c.post(
        "/api/v1/adoptions",
        json={
            "td_url": f"http://127.0.0.1:{valve.port}/td",
            "id": "acme:valve-q",
            "poll_interval": 0.5,
        },
    )
    assert adopted.status_code == 201, adopted.text

    async def read() -> bool:
        return bool((await c.get(f"{THING}/twin")).json()["reported"].get("opening") == 10.0)

    await until(read)
    # A desired change the Thing refuses: iotas keeps trying (backoff from 1 s).
    assert (await c.patch(f"{THING}/twin/desired", json={"opening": 55.0})).status_code == 200
    await until(lambda: len(valve.writes) >= 1)

    quarantined = await c.post(f"{THING}/quarantine", json={"reason": "odd traffic"})
    assert quarantined.status_code in (200, 201), quarantined.text
    tried = len(valve.writes)
    valve.refusing = False  # the Thing would now take the pending write
    # Reads go on every 0.5 s; 10 more of them span several of the 1 s and 2 s retries that
    # would, without the quarantine, have written the pending value.
    reads = valve.reads
    await until(lambda: valve.reads >= reads + 10)

    assert valve.writes[tried:] == [], "a quarantined Thing was written to"
    assert valve.opening == 10.0
    twin = (await c.get(f"{THING}/twin")).json()
    assert twin["desired"]["opening"] == 55.0 and twin["reported"]["opening"] == 10.0
