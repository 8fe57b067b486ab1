"""Forensic snapshots: a Thing's complete state, write-once, named by the sha256 of its bytes,
recorded in the journal; on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib

import orjson

from support import LiveServer


async def test_snapshot_holds_the_state_and_is_named_by_its_hash(server: LiveServer) -> None:
    c = server.client
    await c.post(
        "/api/v1/things",
        json={
            "id": "acme:cam-9",
            "kind": "camera",
            "attributes": {"site": "gate"},
            "links": [{"rel": "hosted-by", "target": "acme:gw-1"}],
        },
    )
    await c.patch("/api/v1/things/acme:cam-9/twin/desired", json={"fps": 25})
    await c.patch("/api/v1/things/acme:cam-9/twin/reported", json={"fps": 12})
    await c.post("/api/v1/things/acme:cam-9/credentials", json={"type": "password"})
    await c.post("/api/v1/things/acme:cam-9/telemetry", json={"temp": 41.5})

    taken = await c.post("/api/v1/things/acme:cam-9/snapshots", json={"reason": "tamper alarm"})
    assert taken.status_code == 201, taken.text
    digest = taken.json()["sha256"]
    assert taken.headers["location"] == f"/api/v1/snapshots/{digest}"

    download = await c.get(f"/api/v1/snapshots/{digest}")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == digest  # its name is its hash
    doc = orjson.loads(download.content)
    thing = (await c.get("/api/v1/things/acme:cam-9")).json()
    assert doc["thing"]["twin"]["desired"] == {"fps": 25}
    assert doc["thing"]["twin"]["reported"] == {"fps": 12}
    assert doc["thing"]["twin"]["metadata"] == thing["twin"]["metadata"]
    assert doc["thing"]["links"] == thing["links"] and doc["reason"] == "tamper alarm"
    assert [c_["type"] for c_ in doc["credentials"]] == ["password"]
    assert "secret" not in download.text and "$7$" not in download.text
    assert [e["type"] for e in doc["journal"]["events"]][:3] == [
        "thing_created",
        "desired_changed",
        "reported_changed",
    ]

    # Recorded in the journal with its digest; listed; never changed or deleted.
    history = (await c.get("/api/v1/things/acme:cam-9/history")).json()["items"]
    recorded = history[-1]
    assert recorded["type"] == "snapshot_taken"
    assert recorded["patch"] == {"sha256": digest, "reason": "tamper alarm"}
    listed = (await c.get("/api/v1/things/acme:cam-9/snapshots")).json()["items"]
    assert [s["sha256"] for s in listed] == [digest]
    for method in ("PUT", "PATCH", "DELETE"):
        refused = await c.request(method, f"/api/v1/snapshots/{digest}", json={})
        assert refused.status_code == 405, method
    assert (await c.get(f"/api/v1/snapshots/{digest}")).content == download.content
    # The Thing deleted: its snapshot stays.
    await c.delete("/api/v1/things/acme:cam-9")
    assert (await c.get(f"/api/v1/snapshots/{digest}")).content == download.content
    assert (await c.get("/api/v1/journal/verify")).json()["ok"] is True


async def test_bad_snapshot_requests(server: LiveServer) -> None:
    c = server.client
    assert (await c.post("/api/v1/things/acme:none/snapshots")).status_code == 404
    await c.post("/api/v1/things", json={"id": "acme:s", "kind": "k"})
    body: object  # JSON bodies of every shape, right and wrong
    for body in ({"reason": 5}, {"why": "x"}, [], {"reason": "x" * 600}):
        response = await c.post("/api/v1/things/acme:s/snapshots", json=body)
        assert response.status_code == 400, body
    for name in ("nothex", "0" * 64):
        response = await c.get(f"/api/v1/snapshots/{name}")
        assert response.status_code in (400, 404)
