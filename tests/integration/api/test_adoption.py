"""Adopting a third-party HTTP Thing by its TD URL: reads, reconciliation, drift, actions,
reachability and secrets, through the real API and a real HTTP Thing on loopback, on SQLite
and PostgreSQL. (Things of real WoT runtimes, wotpy and node-wot: tests/integration/wot.)"""

from __future__ import annotations

import asyncio
import base64
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
from td_check import assert_valid_td

PASSWORD = "s3cret-lamp-password"


@dataclass
class Thermostat:
    """A Thing nobody at iotas wrote, with basic auth: a setpoint (writable), a temperature
    (read-only), a `boost` action and an `alarm` event by long-poll."""

    port: int
    values: dict[str, Any] = field(default_factory=lambda: {"setpoint": 20.0, "temperature": 19.5})
    writes: list[tuple[str, Any]] = field(default_factory=list)
    alarms: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)

    async def stop(self) -> None:
        """Replaced by the fixture: stop serving."""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def td(self) -> dict[str, Any]:
        prop = f"{self.base}/properties"
        return {
            "@context": "https://www.w3.org/2022/wot/td/v1.1",
            "@type": "Thermostat",
            "id": f"urn:test:thermostat:{self.port}",
            "title": "Thermostat",
            "securityDefinitions": {"basic_sc": {"scheme": "basic", "in": "header"}},
            "security": ["basic_sc"],
            "properties": {
                "setpoint": {"type": "number", "forms": [{"href": f"{prop}/setpoint"}]},
                "temperature": {
                    "type": "number",
                    "readOnly": True,
                    "forms": [{"href": f"{prop}/temperature"}],
                },
            },
            "actions": {
                "boost": {
                    "input": {"type": "number"},
                    "output": {"type": "number"},
                    "forms": [{"href": f"{self.base}/actions/boost"}],
                }
            },
            "events": {
                "alarm": {
                    "data": {"type": "string"},
                    "forms": [{"href": f"{self.base}/events/alarm", "subprotocol": "longpoll"}],
                }
            },
        }

    def app(self) -> Starlette:
        expected = "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()

        def authorised(request: Request) -> bool:
            return request.headers.get("authorization") == expected

        async def td(request: Request) -> Response:
            return JSONResponse(self.td(), media_type="application/td+json")

        async def prop(request: Request) -> Response:
            if not authorised(request):
                return Response(status_code=401)
            name = request.path_params["name"]
            if request.method == "PUT":
                value = orjson.loads(await request.body())
                self.writes.append((name, value))
                self.values[name] = value
                return Response(status_code=204)
            return JSONResponse(self.values[name])

        async def boost(request: Request) -> Response:
            if not authorised(request):
                return Response(status_code=401)
            by = orjson.loads(await request.body())
            self.values["temperature"] += by
            return JSONResponse(self.values["temperature"])

        async def alarm(request: Request) -> Response:
            try:
                data = await asyncio.wait_for(self.alarms.get(), 5)
            except TimeoutError:
                return Response(status_code=204)
            return JSONResponse(data)

        return Starlette(
            routes=[
                Route("/td", td),
                Route("/properties/{name}", prop, methods=["GET", "PUT"]),
                Route("/actions/boost", boost, methods=["POST"]),
                Route("/events/alarm", alarm),
            ]
        )


@pytest.fixture
async def thermostat() -> AsyncIterator[Thermostat]:
    thing = Thermostat(free_port())
    server = uvicorn.Server(
        uvicorn.Config(thing.app(), host="127.0.0.1", port=thing.port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.02)

    async def stop() -> None:
        server.should_exit = True
        await asyncio.wait_for(task, 10)

    thing.stop = stop  # type: ignore[method-assign]
    yield thing
    if not task.done():
        await stop()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {within} s")


async def adopt(server: LiveServer, thermostat: Thermostat) -> dict[str, Any]:
    response = await server.client.post(
        "/api/v1/adoptions",
        json={
            "td_url": f"{thermostat.base}/td",
            "id": "acme:thermostat-1",
            "poll_interval": 0.5,
            "credentials": {"username": "admin", "password": PASSWORD},
        },
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_adopt_read_reconcile_drift_and_act(
    server: LiveServer, thermostat: Thermostat
) -> None:
    c = server.client
    adopted = await adopt(server, thermostat)
    assert adopted["thing"]["kind"] == "Thermostat"
    assert adopted["adoption"]["credentials"] is True and PASSWORD not in str(adopted)
    thing = "/api/v1/things/acme:thermostat-1"

    async def twin() -> dict[str, Any]:
        body: dict[str, Any] = (await c.get(f"{thing}/twin")).json()
        return body

    # Read through the TD's forms: the Thing's values become reported state.
    async def read() -> bool:
        return bool((await twin())["reported"] == {"setpoint": 20.0, "temperature": 19.5})

    await eventually(read)
    # The TD is served as given, and is valid.
    served = (await c.get("/tdd/things/urn:test:thermostat:" + str(thermostat.port))).json()
    assert served == thermostat.td()
    assert_valid_td(served)

    # A desired change is written to the Thing through its own API, then in sync.
    await c.patch(f"{thing}/twin/desired", json={"setpoint": 22.5})

    async def synced() -> bool:
        return bool((await twin())["status"] == "in_sync")

    await eventually(synced)
    assert thermostat.values["setpoint"] == 22.5
    assert ("setpoint", 22.5) in thermostat.writes

    # Changed outside iotas: drifted, then put back.
    writes_before = len(thermostat.writes)
    thermostat.values["setpoint"] = 17.0

    async def put_back() -> bool:
        return len(thermostat.writes) > writes_before and (await twin())["status"] == "in_sync"

    await eventually(put_back)
    assert thermostat.values["setpoint"] == 22.5

    # An action, checked against the TD and queued; the WoT worker runs it from the queue.
    result = await c.post(f"{thing}/actions/boost", json={"input": 1.5})
    assert result.status_code == 202, result.text
    assert result.json()["status"] == "queued" and result.json()["input"] == 1.5
    ended = (await c.get(result.headers["Location"], params={"wait": 20})).json()
    assert (ended["status"], ended["output"]) == ("succeeded", 21.0), ended
    assert (await c.post(f"{thing}/actions/boost", json={"input": "x"})).status_code == 400

    # An event from the Thing lands in the journal.
    await thermostat.alarms.put("too hot")

    async def alarmed() -> bool:
        items = (await c.get(f"{thing}/history", params={"limit": 500})).json()["items"]
        return any(e["type"] == "thing_event" for e in items)

    await eventually(alarmed)

    items = (await c.get(f"{thing}/history", params={"limit": 500})).json()["items"]
    types = [e["type"] for e in items]
    assert "adapter_attempt" in types and "reported_changed" in types
    drift = [
        e for e in items if e["type"] == "reported_changed" and e["patch"] == {"setpoint": 17.0}
    ]
    assert drift, "the change made outside iotas is in the journal"
    attempts = [e["patch"] for e in items if e["type"] == "adapter_attempt"]
    assert {k: attempts[0][k] for k in ("op", "name", "value")} == {
        "op": "writeproperty",
        "name": "setpoint",
        "value": 22.5,
    }
    assert attempts[0]["outcome"] == "succeeded"
    assert any(a["op"] == "invokeaction" and a["outcome"] == "succeeded" for a in attempts)
    event = next(e for e in items if e["type"] == "thing_event")
    assert event["patch"] == {"name": "alarm", "data": "too hot"}
    # The password is in no journal event.
    journal = (await c.get("/api/v1/journal", params={"limit": 1000})).text
    assert PASSWORD not in journal


async def test_refused_writes_are_retried_and_a_silent_thing_is_unreachable(
    server: LiveServer, thermostat: Thermostat
) -> None:
    c = server.client
    await adopt(server, thermostat)
    thing = "/api/v1/things/acme:thermostat-1"

    async def twin() -> dict[str, Any]:
        body: dict[str, Any] = (await c.get(f"{thing}/twin")).json()
        return body

    async def read() -> bool:
        return bool((await twin())["reported"].get("setpoint") == 20.0)

    await eventually(read)
    # Adopted again with a wrong password: the Thing refuses every write (401); iotas retries
    # with backoff and journals each failed attempt; the Thing is still reachable.
    again = await c.post(
        "/api/v1/adoptions",
        json={
            "td_url": f"{thermostat.base}/td",
            "id": "acme:thermostat-1",
            "poll_interval": 0.5,
            "credentials": {"username": "admin", "password": "wrong"},
        },
    )
    assert again.status_code == 200, again.text
    await c.patch(f"{thing}/twin/desired", json={"setpoint": 30})

    async def failed_twice() -> bool:
        items = (await c.get(f"{thing}/history", params={"limit": 500})).json()["items"]
        failed = [
            e["patch"]
            for e in items
            if e["type"] == "adapter_attempt" and e["patch"]["outcome"] == "failed"
        ]
        return len(failed) >= 2 and "401" in failed[0]["error"]

    await eventually(failed_twice, within=15)
    current = await twin()
    assert current["status"] == "pending" and current["delta"] == {"setpoint": 30}
    assert thermostat.values["setpoint"] == 20.0
    assert (await c.get(thing)).json()["connected"] is True

    # Gone: disconnected (journaled), then unreachable after its expected_interval.
    await thermostat.stop()

    async def unreachable() -> bool:
        return bool((await twin())["status"] == "unreachable")

    await eventually(unreachable, within=15)
    items = (await c.get(f"{thing}/history", params={"limit": 500})).json()["items"]
    assert "thing_disconnected" in [e["type"] for e in items]


async def test_bad_adoptions_are_refused(server: LiveServer, thermostat: Thermostat) -> None:
    c = server.client
    cases: list[Any] = [
        {},
        {"td_url": "http://127.0.0.1:1/td"},  # nothing listens
        {"td_url": f"{thermostat.base}/td", "td": {}},
        {"td": {"title": "no forms"}},
        {"td": thermostat.td(), "poll_interval": 0},
        {"td": thermostat.td(), "credentials": {"password": 1}},
        {"td": thermostat.td(), "id": "not an id"},
        [],
    ]
    for body in cases:
        response = await c.post("/api/v1/adoptions", json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert (await c.get("/api/v1/adoptions")).json()["items"] == []
    native = await c.post("/api/v1/things", json={"id": "acme:n-1", "kind": "n"})
    assert native.status_code == 201
    refused = await c.post("/api/v1/things/acme:n-1/actions/go", json={"input": 1})
    assert refused.status_code == 404  # its model (none) declares no action
    missing = await c.post("/api/v1/things/acme:nope/actions/go", json={})
    assert missing.status_code == 404
