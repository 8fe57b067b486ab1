"""The invokeaction form of native Things' TDs over loopback HTTP, on both backends: the
input itself in, the output out (200) once the Thing succeeds; a problem when it fails
(502), expires (504) or is cancelled (409); 202 with the invocation when not done within the
wait (`Prefer: wait=N`, `respond-async`); the invocation service's refusals (400 pointing
into the body, 404, 415, 423, 429) before anything is queued. The device's side is played
through the invocations service, as the MQTT ingest and the device routes do (the MQTT
path itself: tests/integration/td_consumers/test_node_wot_actions.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from integration.api.test_invocations import MODEL
from iotas.domain.invocations import Invocation
from iotas.runtime.node import Runtime
from iotas.services.context import Actor, Context
from support import eventually, live_server

THING = "acme:lamp-1"
ACTIONS = f"/api/v1/things/{THING}/actions"


@dataclass
class Node:
    client: httpx.AsyncClient
    rt: Runtime

    async def answer(self, result: dict[str, Any], thing_id: str = THING) -> Invocation:
        """Be the device: take the first invocation queued for it and report `result`."""
        pending: list[Invocation] = await eventually(lambda: self.rt.invocations.pending(thing_id))
        device = Context(Actor(thing_id, role="device"), "test device")
        reported = await self.rt.invocations.report(device, thing_id, pending[0].id, result)
        assert reported is not None
        return reported


@pytest.fixture
async def node(database_url: str, tmp_path: Path) -> AsyncIterator[Node]:
    async with live_server(database_url, tmp_path / "data") as (live, app):
        made = await live.client.post(
            "/api/v1/things", json={"id": THING, "kind": "lamp", "description": MODEL}
        )
        assert made.status_code == 201, made.text
        yield Node(live.client, app.state.runtime)


async def test_the_output_once_the_thing_succeeds(node: Node) -> None:
    device = asyncio.create_task(node.answer({"status": "succeeded", "output": {"level": 40}}))
    answer = await node.client.post(f"{ACTIONS}/dim/invoke", json={"level": 40})
    done = await device
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"level": 40}
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["link"] == f'</api/v1/invocations/{done.id}>; rel="related"'
    assert done.input == {"level": 40}

    # No body is a null input; an action without an output answers null. For an action
    # without input, {} is no input too (what thingctx sends).
    for sent in (b"", b"{}"):
        device = asyncio.create_task(node.answer({"status": "succeeded"}))
        answer = await node.client.post(f"{ACTIONS}/reboot/invoke", content=sent)
        assert (await device).input is None
        assert answer.status_code == 200 and answer.json() is None


async def test_a_failure_is_a_502_naming_the_things_error(node: Node) -> None:
    error = {"code": "overheated", "message": "too hot to dim"}
    device = asyncio.create_task(node.answer({"status": "failed", "error": error}))
    answer = await node.client.post(f"{ACTIONS}/dim/invoke", json={"level": 3})
    done = await device
    assert answer.status_code == 502, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["error"] == error and problem["invocation"] == done.id
    assert problem["instance"] == f"/api/v1/invocations/{done.id}"
    assert "overheated: too hot to dim" in problem["detail"]


async def test_not_done_within_the_wait_is_a_202_to_follow(node: Node) -> None:
    answer = await node.client.post(
        f"{ACTIONS}/dim/invoke", json={"level": 1}, headers={"Prefer": "wait=1"}
    )
    assert answer.status_code == 202, answer.text
    queued = answer.json()
    assert queued["status"] == "queued" and queued["input"] == {"level": 1}
    assert answer.headers["location"] == f"/api/v1/invocations/{queued['id']}"

    asap = await node.client.post(
        f"{ACTIONS}/reboot/invoke", headers={"Prefer": "respond-async, wait=30"}
    )
    assert asap.status_code == 202 and asap.headers["preference-applied"] == "respond-async"

    # It stays queued for the Thing: the device takes it later, and the Location tells.
    done = await node.answer({"status": "succeeded", "output": {"level": 1}})
    assert done.id == queued["id"]
    followed = await node.client.get(answer.headers["location"])
    assert followed.json()["status"] == "succeeded" and followed.json()["output"] == {"level": 1}


async def test_cancelled_or_expired_while_waiting(node: Node) -> None:
    async def cancel() -> None:
        pending = await eventually(lambda: node.rt.invocations.pending(THING))
        cancelled = await node.client.post(f"/api/v1/invocations/{pending[0].id}/cancel")
        assert cancelled.status_code == 200, cancelled.text

    canceller = asyncio.create_task(cancel())
    answer = await node.client.post(f"{ACTIONS}/reboot/invoke")
    await canceller
    assert answer.status_code == 409 and answer.json()["title"] == "The invocation was cancelled"

    async def expire() -> None:
        pending = await eventually(lambda: node.rt.invocations.pending(THING))
        await node.rt.invocations.expire_due(pending[0].expires_us + 1)

    expirer = asyncio.create_task(expire())
    answer = await node.client.post(f"{ACTIONS}/reboot/invoke", params={"ttl": 1})
    await expirer
    assert answer.status_code == 504, answer.text
    assert answer.json()["type"].endswith("/action-expired")


async def test_refused_before_anything_is_queued(node: Node) -> None:
    c = node.client
    bad = await c.post(f"{ACTIONS}/dim/invoke", json={"level": 500})
    assert bad.status_code == 400, bad.text
    # The body is the input: the pointer is into it.
    assert bad.json()["field"] == "/level" and "maximum" in bad.json()["detail"]
    missing = await c.post(f"{ACTIONS}/dim/invoke")
    assert missing.status_code == 400 and missing.json()["field"] == ""
    assert (await c.post(f"{ACTIONS}/dim/invoke", json="bright")).status_code == 400
    assert (await c.post(f"{ACTIONS}/blink/invoke", json=1)).status_code == 404
    assert (await c.post("/api/v1/things/acme:none/actions/reboot/invoke")).status_code == 404
    text = await c.post(
        f"{ACTIONS}/reboot/invoke", content=b"x", headers={"Content-Type": "text/plain"}
    )
    assert text.status_code == 415
    too_short = await c.post(f"{ACTIONS}/reboot/invoke", params={"ttl": 0})
    assert too_short.status_code == 400
    assert (await c.get("/api/v1/invocations", params={"thing": THING})).json()["items"] == []

    node.rt.invocations.queue_bound = 1
    first = await c.post(f"{ACTIONS}/reboot/invoke", headers={"Prefer": "respond-async"})
    assert first.status_code == 202
    full = await c.post(f"{ACTIONS}/reboot/invoke", headers={"Prefer": "respond-async"})
    assert full.status_code == 429, full.text

    await c.post(f"/api/v1/things/{THING}/quarantine", json={"reason": "odd"})
    locked = await c.post(f"{ACTIONS}/reboot/invoke")
    assert locked.status_code == 423 and "quarantined" in locked.json()["detail"]


async def test_an_idempotency_key_is_the_same_invocation(node: Node) -> None:
    key = {"Idempotency-Key": "dim-1", "Prefer": "respond-async"}
    first = await node.client.post(f"{ACTIONS}/dim/invoke", json={"level": 9}, headers=key)
    again = await node.client.post(f"{ACTIONS}/dim/invoke", json={"level": 9}, headers=key)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = await node.client.post(f"{ACTIONS}/dim/invoke", json={"level": 8}, headers=key)
    assert other.status_code == 409


async def test_the_openapi_document_names_every_answer(node: Node) -> None:
    """Every status the tests above saw is documented, with the content type it is sent as
    (schemathesis, test_openapi_conformance.py, reaches this route with Things that do not
    exist: 404s only)."""
    spec = (await node.client.get("/api/v1/openapi.json")).json()
    operation = spec["paths"]["/api/v1/things/{thing_id}/actions/{name}/invoke"]["post"]
    responses = operation["responses"]
    assert list(responses["200"]["content"]) == ["application/json"]
    assert list(responses["202"]["content"]) == ["application/json"]
    assert "Location" in responses["202"]["headers"]
    for status in ("400", "401", "403", "404", "409", "415", "423", "429", "502", "504"):
        assert list(responses[status]["content"]) == ["application/problem+json"], status
    assert operation["requestBody"]["required"] is False
    named = {(p["in"], p["name"]) for p in operation["parameters"]}
    assert {("query", "ttl"), ("header", "idempotency-key"), ("header", "prefer")} <= named
