"""Things and twins through the API, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from support import LiveServer

PUMP: dict[str, Any] = {
    "id": "acme:pump-1",
    "kind": "pump",
    "attributes": {"site": "plant-7", "model": {"vendor": "x", "rev": 2}},
    "labels": {"tier": "edge"},
    "links": [{"rel": "hosted-by", "target": "acme:gw-1"}],
}


async def test_create_read_list_patch_delete(server: LiveServer) -> None:
    c = server.client
    created = await c.post("/api/v1/things", json=PUMP)
    assert created.status_code == 201
    assert created.headers["location"] == "/api/v1/things/acme:pump-1"
    thing = created.json()
    assert thing["namespace"] == "acme" and thing["revision"] == 1
    assert thing["twin"]["status"] == "in_sync" and thing["twin"]["version"] == 0
    assert (await c.post("/api/v1/things", json=PUMP)).status_code == 409

    got = (await c.get("/api/v1/things/acme:pump-1")).json()
    assert got == thing

    patched = await c.patch(
        "/api/v1/things/acme:pump-1",
        json={
            "attributes": {"model": {"rev": None, "year": 2024}, "floor": 3},
            "labels": {"tier": None, "zone": "b"},
            "links": [{"rel": "located-in", "target": "acme:room-1"}],
        },
        headers={"content-type": "application/merge-patch+json"},
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["attributes"] == {
        "site": "plant-7",
        "model": {"vendor": "x", "year": 2024},
        "floor": 3,
    }
    assert body["labels"] == {"zone": "b"}
    assert body["links"] == [{"rel": "located-in", "target": "acme:room-1"}]
    assert body["revision"] == 2

    listed = (await c.get("/api/v1/things")).json()
    assert [t["id"] for t in listed["items"]] == ["acme:pump-1"] and listed["next"] is None

    assert (await c.delete("/api/v1/things/acme:pump-1")).status_code == 204
    assert (await c.get("/api/v1/things/acme:pump-1")).status_code == 404


async def test_a_patch_that_changes_nothing_records_nothing(server: LiveServer) -> None:
    c = server.client
    await c.post("/api/v1/things", json=PUMP)
    before = (await c.get("/api/v1/journal")).json()["items"]
    same = await c.patch("/api/v1/things/acme:pump-1", json={"labels": {"tier": "edge"}})
    assert same.status_code == 200 and same.json()["revision"] == 1
    await c.patch("/api/v1/things/acme:pump-1/twin/reported", json={"a": 1})
    await c.patch("/api/v1/things/acme:pump-1/twin/reported", json={"a": 1.0, "b": None})
    after = (await c.get("/api/v1/journal")).json()["items"]
    assert len(after) == len(before) + 1


async def test_twin_desired_reported_delta_status_and_versions(server: LiveServer) -> None:
    c = server.client
    await c.post("/api/v1/things", json=PUMP)
    r = await c.patch(
        "/api/v1/things/acme:pump-1/twin/desired", json={"setpoint": 21, "net": {"ssid": "a"}}
    )
    twin = r.json()
    assert r.headers["etag"] == '"1"'
    assert twin["version"] == 1 and twin["status"] == "pending" and twin["pending_since"]
    assert twin["delta"] == {"setpoint": 21, "net": {"ssid": "a"}}
    assert twin["metadata"]["desired"]["/setpoint"]["source"] == "admin"

    r = await c.patch("/api/v1/things/acme:pump-1/twin/reported", json={"setpoint": 21})
    assert r.json()["delta"] == {"net": {"ssid": "a"}} and r.json()["status"] == "pending"
    r = await c.patch(
        "/api/v1/things/acme:pump-1/twin/reported", json={"net": {"ssid": "a", "rssi": -70}}
    )
    twin = r.json()
    assert twin["status"] == "in_sync" and twin["delta"] == {} and twin["pending_since"] is None
    assert twin["version"] == 3
    assert (await c.get("/api/v1/things/acme:pump-1/twin")).json() == twin


async def test_if_match_gives_optimistic_concurrency(server: LiveServer) -> None:
    c = server.client
    await c.post("/api/v1/things", json=PUMP)
    url = "/api/v1/things/acme:pump-1/twin/desired"
    ok = await c.patch(url, json={"a": 1}, headers={"If-Match": '"0"'})
    assert ok.status_code == 200 and ok.json()["version"] == 1
    stale = await c.patch(url, json={"a": 2}, headers={"If-Match": "0"})
    assert stale.status_code == 412
    assert stale.headers["content-type"].startswith("application/problem+json")
    assert stale.json()["current_version"] == 1
    assert (await c.get("/api/v1/things/acme:pump-1/twin")).json()["desired"] == {"a": 1}
    assert (await c.patch(url, json={"a": 2}, headers={"If-Match": 'W/"1"'})).status_code == 200


async def test_listing_pages_are_stable_and_filtered(server: LiveServer) -> None:
    c = server.client
    for i in range(25):
        kind = "pump" if i % 2 else "sensor"
        body = {"id": f"acme:t-{i:03d}", "kind": kind, "attributes": {"n": i}}
        assert (await c.post("/api/v1/things", json=body)).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 7}
        if cursor:
            params["cursor"] = cursor
        page = (await c.get("/api/v1/things", params=params)).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [f"acme:t-{i:03d}" for i in range(25)]

    pumps = (
        await c.get("/api/v1/things", params={"q": 'kind == "pump" and attributes.n >= 15'})
    ).json()
    assert [t["id"] for t in pumps["items"]] == [f"acme:t-{i:03d}" for i in (15, 17, 19, 21, 23)]


async def test_things_are_created_in_batches_one_event_each(server: LiveServer) -> None:
    c = server.client
    assert (await c.post("/api/v1/things", json=PUMP)).status_code == 201
    head = (await c.get("/api/v1/journal/verify")).json()["checked"]
    bodies: list[dict[str, Any]] = [
        {"id": f"acme:s-{i:04d}", "kind": "sensor", "attributes": {"site": f"s{i % 3}"}}
        for i in range(600)  # more than one page of the unit of work
    ]
    sent = [*bodies[:2], PUMP, bodies[0], *bodies[2:]]
    answer = await c.post("/api/v1/things:batch", json={"things": sent})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["created"], body["conflicts"]) == (600, 2)
    assert [(item["id"], item["status"]) for item in body["items"][:5]] == [
        ("acme:s-0000", 201),
        ("acme:s-0001", 201),
        ("acme:pump-1", 409),
        ("acme:s-0000", 409),
        ("acme:s-0002", 201),
    ]
    assert "given twice" in body["items"][3]["detail"]
    # One creation event each, the chain intact, and the field index written.
    verified = (await c.get("/api/v1/journal/verify")).json()
    assert verified["ok"] and verified["checked"] == head + 600
    site = await c.get("/api/v1/things", params={"q": 'attributes.site == "s1"', "limit": 1000})
    assert len(site.json()["items"]) == 200
    got = (await c.get("/api/v1/things/acme:s-0599")).json()
    assert got["attributes"] == {"site": "s2"} and got["revision"] == 1


async def test_a_batch_with_one_invalid_thing_creates_nothing(server: LiveServer) -> None:
    c = server.client
    things: list[dict[str, Any]] = [
        {"id": "acme:ok-1", "kind": "sensor"},
        {"id": "no namespace", "kind": "sensor"},
    ]
    answer = await c.post("/api/v1/things:batch", json={"things": things})
    assert answer.status_code == 400, answer.text
    assert "things[1]" in answer.json()["detail"]
    assert (await c.get("/api/v1/things/acme:ok-1")).status_code == 404
    too_many = [{"id": f"acme:x-{i}", "kind": "k"} for i in range(1001)]
    assert (await c.post("/api/v1/things:batch", json={"things": too_many})).status_code == 400
    assert (await c.post("/api/v1/things:batch", json={"things": []})).status_code == 400
