"""Invocations over the API on both backends: operators invoke (202), follow, wait, list and
cancel; devices fetch their queue and post results over mTLS with their own certificate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from iotas.domain import clock
from support import (
    LAMP_MODEL,
    LiveServer,
    cert_files,
    eventually,
    https_server,
    live_server,
    tls_client,
)

MODEL = LAMP_MODEL
LAMP = "/api/v1/things/acme:lamp"


async def _lamp(c: httpx.AsyncClient, thing_id: str = "acme:lamp") -> None:
    made = await c.post(
        "/api/v1/things", json={"id": thing_id, "kind": "lamp", "description": MODEL}
    )
    assert made.status_code == 201, made.text


async def test_invoke_answers_202_and_refuses_what_it_must(server: LiveServer) -> None:
    c = server.client
    await _lamp(c)
    made = await c.post(f"{LAMP}/actions/dim", json={"input": {"level": 5}, "ttl": 60})
    assert made.status_code == 202, made.text
    body = made.json()
    assert body["status"] == "queued" and body["thing"] == "acme:lamp" and body["action"] == "dim"
    assert body["input"] == {"level": 5} and body["attempts"] == 0 and body["output"] is None
    assert clock.parse_rfc3339(body["expires"]) - clock.parse_rfc3339(body["created"]) == 60e6
    assert made.headers["location"] == f"/api/v1/invocations/{body['id']}"
    assert (await c.get(made.headers["location"])).json() == body

    unknown = await c.post(f"{LAMP}/actions/blink", json={})
    assert unknown.status_code == 404 and "blink" in unknown.json()["detail"]
    bad = await c.post(f"{LAMP}/actions/dim", json={"input": {"level": 500}})
    assert bad.status_code == 400 and bad.json()["field"] == "/input/level", bad.text
    assert bad.headers["content-type"] == "application/problem+json"
    for wrong in ({"input": {"level": 5}, "ttl": 0}, {"input": 1, "extra": 2}, {"ttl": "1"}):
        assert (await c.post(f"{LAMP}/actions/dim", json=wrong)).status_code == 400, wrong
    assert (await c.post("/api/v1/things/acme:none/actions/dim", json={})).status_code == 404

    # The same key within 24 h: the same invocation; with another input: 409.
    key = {"input": None, "idempotency_key": "boot-1"}
    first = (await c.post(f"{LAMP}/actions/reboot", json=key)).json()
    again = (await c.post(f"{LAMP}/actions/reboot", json=key)).json()
    assert first["id"] == again["id"]
    other = await c.post(f"{LAMP}/actions/reboot", json={**key, "input": {"now": True}})
    assert other.status_code == 409

    # Quarantined: locked.
    await c.post(f"{LAMP}/quarantine", json={"reason": "odd"})
    locked = await c.post(f"{LAMP}/actions/reboot", json={})
    assert locked.status_code == 423 and "quarantined" in locked.json()["detail"]


async def test_lists_cancel_and_the_journal(server: LiveServer) -> None:
    c = server.client
    await _lamp(c)
    await _lamp(c, "beta:lamp")
    a = (await c.post(f"{LAMP}/actions/reboot", json={})).json()
    b = (await c.post("/api/v1/things/beta:lamp/actions/reboot", json={})).json()
    cancelled = await c.post(f"/api/v1/invocations/{a['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert (await c.post(f"/api/v1/invocations/{a['id']}/cancel")).status_code == 409
    assert (await c.post("/api/v1/invocations/inv-nope/cancel")).status_code == 404

    def ids(response: httpx.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [i["id"] for i in response.json()["items"]]

    assert ids(await c.get("/api/v1/invocations")) == [a["id"], b["id"]]
    assert ids(await c.get("/api/v1/invocations", params={"status": "queued"})) == [b["id"]]
    assert ids(await c.get("/api/v1/invocations", params={"thing": "acme:lamp"})) == [a["id"]]
    page = (await c.get("/api/v1/invocations", params={"limit": 1})).json()
    assert page["next"] == a["id"]
    assert ids(await c.get("/api/v1/invocations", params={"after": page["next"]})) == [b["id"]]
    assert ids(await c.get(f"{LAMP}/invocations", params={"status": "cancelled"})) == [a["id"]]
    assert (await c.get("/api/v1/invocations", params={"status": "done"})).status_code == 400
    assert (await c.get("/api/v1/things/acme:none/invocations")).status_code == 404

    # A token limited to a namespace sees only its namespace's invocations.
    made = await c.post(
        "/api/v1/tokens", json={"subject": "beta-ops", "role": "operator", "namespaces": ["beta"]}
    )
    async with server.anonymous() as anon:
        anon.headers["authorization"] = f"Bearer {made.json()['token']}"
        assert ids(await anon.get("/api/v1/invocations")) == [b["id"]]
        assert ids(await anon.get("/api/v1/invocations", params={"thing": "acme:lamp"})) == []
        assert (await anon.get(f"/api/v1/invocations/{a['id']}")).status_code == 404
        assert (await anon.post(f"/api/v1/invocations/{b['id']}/cancel")).status_code == 200

    journal = (await c.get("/api/v1/journal", params={"kind": "invocation"})).json()["items"]
    assert [(e["record_id"], e["type"]) for e in journal] == [
        (a["id"], "invocation_created"),
        (b["id"], "invocation_created"),
        (a["id"], "invocation_changed"),
        (b["id"], "invocation_changed"),
    ]
    assert journal[2]["patch"] == {"status": "cancelled"} and journal[0]["patch"]["input"] is None
    assert (await c.get("/api/v1/journal/verify")).json()["ok"] is True


async def test_over_the_bound_is_429(database_url: str, tmp_path: Path) -> None:
    async with live_server(database_url, tmp_path / "d") as (server, app):
        app.state.runtime.invocations.queue_bound = 2
        c = server.client
        await _lamp(c)
        for _ in range(2):
            assert (await c.post(f"{LAMP}/actions/reboot", json={})).status_code == 202
        full = await c.post(f"{LAMP}/actions/reboot", json={})
        assert full.status_code == 429 and "not finished" in full.json()["detail"]


@pytest.fixture
async def mtls(database_url: str, tmp_path: Path) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """iotas over HTTPS with two lamps: clients for the admin (token) and for each lamp's
    device (its own client certificate)."""
    token = "iotas_test_invocations_0123456789abcdef"
    async with (
        https_server(database_url, tmp_path / "d", token) as (url, ca),
        tls_client(url, ca, None) as admin,
    ):
        admin.headers["authorization"] = f"Bearer {token}"
        certs: dict[str, tuple[str, str]] = {}
        for name in ("lamp", "other"):
            await _lamp(admin, f"acme:{name}")
            made = await admin.post(
                f"/api/v1/things/acme:{name}/credentials", json={"type": "x509"}
            )
            assert made.status_code == 201, made.text
            certs[name] = cert_files(
                tmp_path, name, made.json()["certificate"], made.json()["private_key"]
            )
        async with (
            tls_client(url, ca, certs["lamp"]) as lamp,
            tls_client(url, ca, certs["other"]) as other,
        ):
            yield {"admin": admin, "lamp": lamp, "other": other}


async def test_a_device_fetches_its_queue_and_posts_results_over_mtls(
    mtls: dict[str, httpx.AsyncClient],
) -> None:
    admin, lamp, other = mtls["admin"], mtls["lamp"], mtls["other"]
    first = (await admin.post(f"{LAMP}/actions/dim", json={"input": {"level": 1}})).json()
    second = (await admin.post(f"{LAMP}/actions/reboot", json={})).json()
    theirs = await admin.post("/api/v1/things/acme:other/actions/reboot", json={})

    # Fetching hands out the queue in creation order and marks it delivered.
    fetched = await lamp.get(f"{LAMP}/invocations")
    assert fetched.status_code == 200, fetched.text
    items = fetched.json()["items"]
    assert [i["id"] for i in items] == [first["id"], second["id"]]
    assert {(i["status"], i["attempts"]) for i in items} == {("delivered", 1)}
    # Until it answers, it gets them again (at least once).
    again = (await lamp.get(f"{LAMP}/invocations")).json()["items"]
    assert [i["attempts"] for i in again] == [2, 2]

    result = f"{LAMP}/invocations/{first['id']}/result"
    running = await lamp.post(result, json={"status": "running", "progress": 50})
    assert running.status_code == 200 and running.json()["progress"] == 50
    done = await lamp.post(result, json={"status": "succeeded", "output": {"level": 1}})
    assert done.status_code == 200 and done.json()["status"] == "succeeded"
    assert (await lamp.post(result, json={"status": "failed"})).status_code == 409
    assert (await lamp.post(result, json={"status": "queued"})).status_code == 400
    left = (await lamp.get(f"{LAMP}/invocations")).json()["items"]
    assert [i["id"] for i in left] == [second["id"]]

    # Hostile: another device cannot answer for the lamp, by either path.
    theirs_id = theirs.json()["id"]
    foreign = f"/api/v1/things/acme:other/invocations/{second['id']}/result"
    assert (await other.post(foreign, json={"status": "succeeded"})).status_code == 404
    on_lamp = f"{LAMP}/invocations/{second['id']}/result"
    assert (await other.post(on_lamp, json={"status": "succeeded"})).status_code == 403
    mine_on_lamp = f"{LAMP}/invocations/{theirs_id}/result"
    assert (await lamp.post(mine_on_lamp, json={"status": "failed"})).status_code == 404
    current = (await admin.get(f"/api/v1/invocations/{second['id']}")).json()
    assert current["status"] == "delivered"
    # And a device neither invokes nor reads other routes.
    assert (await lamp.post(f"{LAMP}/actions/reboot", json={})).status_code == 403
    assert (await lamp.get(f"/api/v1/invocations/{second['id']}")).status_code == 403
    assert (await lamp.get("/api/v1/things/acme:other/invocations")).status_code == 403
    stats = (await admin.get("/api/v1/stats")).json()
    assert stats["ingest"]["rejected"]["invocation_other_thing"] == 2, stats


async def test_wait_returns_at_the_final_status(server: LiveServer) -> None:
    c = server.client
    await _lamp(c)
    made = (await c.post(f"{LAMP}/actions/reboot", json={})).json()
    quick = await c.get(f"/api/v1/invocations/{made['id']}", params={"wait": 0.1})
    assert quick.json()["status"] == "queued"
    assert (
        await c.get(f"/api/v1/invocations/{made['id']}", params={"wait": 61})
    ).status_code == 400
    waiting = asyncio.create_task(
        c.get(f"/api/v1/invocations/{made['id']}", params={"wait": 30}, timeout=40)
    )
    cancelled = await c.post(f"/api/v1/invocations/{made['id']}/cancel")
    assert cancelled.status_code == 200
    answered = await asyncio.wait_for(waiting, 20)
    assert answered.json()["status"] == "cancelled"


async def test_an_expired_invocation_is_never_handed_to_the_device(
    mtls: dict[str, httpx.AsyncClient],
) -> None:
    admin, lamp = mtls["admin"], mtls["lamp"]
    short = (await admin.post(f"{LAMP}/actions/reboot", json={"ttl": 1})).json()
    expires = clock.parse_rfc3339(short["expires"])
    await eventually(lambda: clock.now_us() > expires, timeout=5)
    # Whether or not the sweep has run yet, the device never gets it.
    assert (await lamp.get(f"{LAMP}/invocations")).json()["items"] == []

    async def expired() -> bool:
        found = (await admin.get(f"/api/v1/invocations/{short['id']}")).json()
        return bool(found["status"] == "expired")

    await eventually(expired, timeout=10)  # the cluster-wide sweep, every 2 s
    late = await lamp.post(f"{LAMP}/invocations/{short['id']}/result", json={"status": "succeeded"})
    assert late.status_code == 409
    assert (await lamp.get(f"{LAMP}/invocations")).json()["items"] == []
