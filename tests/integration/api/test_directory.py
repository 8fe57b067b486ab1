"""The W3C WoT Thing Description Directory under /tdd, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import pytest
from httpx_sse import aconnect_sse

from support import LiveServer
from td_check import assert_valid_td

TD_TYPE = {"content-type": "application/td+json"}


def lamp(td_id: str | None = "urn:dev:ops:32473-lamp-1", title: str = "Lamp") -> dict[str, Any]:
    """A TD in the style of the TD 1.1 specification's first example."""
    doc: dict[str, Any] = {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "@type": "saref:LightSwitch",
        "title": title,
        "securityDefinitions": {"basic_sc": {"scheme": "basic", "in": "header"}},
        "security": "basic_sc",
        "properties": {
            "status": {
                "type": "string",
                "readOnly": True,
                "forms": [{"href": "https://lamp.example.com/status"}],
            }
        },
        "actions": {"toggle": {"forms": [{"href": "https://lamp.example.com/toggle"}]}},
        "events": {
            "overheating": {
                "data": {"type": "string"},
                "forms": [{"href": "https://lamp.example.com/oh", "subprotocol": "longpoll"}],
            }
        },
    }
    if td_id is not None:
        doc["id"] = td_id
    return doc


def td_url(td_id: str) -> str:
    return f"/tdd/things/{quote(td_id, safe=':')}"


async def test_put_get_update_patch_delete(server: LiveServer) -> None:
    c = server.client
    td_id = "urn:dev:ops:32473-lamp-1"
    created = await c.put(td_url(td_id), json=lamp(td_id), headers=TD_TYPE)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == td_url(td_id)

    got = await c.get(td_url(td_id))
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("application/td+json")
    assert got.json() == lamp(td_id)  # a third-party TD is served as given
    assert_valid_td(got.json())

    # One store: the TD is a Thing of the registry, under an id derived from its URI.
    listed = (await c.get("/api/v1/things", params={"q": 'kind == "saref-LightSwitch"'})).json()
    assert len(listed["items"]) == 1
    thing_id = listed["items"][0]["id"]
    assert thing_id.startswith("wot:32473-lamp-1-")
    assert listed["items"][0]["description"]["id"] == td_id

    updated = await c.put(td_url(td_id), json=lamp(td_id, title="Lamp 2"), headers=TD_TYPE)
    assert updated.status_code == 204, updated.text
    assert (await c.get(td_url(td_id))).json()["title"] == "Lamp 2"

    patched = await c.patch(
        td_url(td_id),
        json={"description": "by the door", "actions": {"toggle": None}},
        headers={"content-type": "application/merge-patch+json"},
    )
    assert patched.status_code == 204, patched.text
    doc = (await c.get(td_url(td_id))).json()
    assert doc["description"] == "by the door" and "toggle" not in doc["actions"]
    assert_valid_td(doc)

    # Every change is in the journal, the TD replacement as the patch between the two.
    history = (await c.get(f"/api/v1/things/{thing_id}/history")).json()["items"]
    assert [e["type"] for e in history] == ["thing_created", "thing_updated", "thing_updated"]
    assert history[1]["patch"] == {"description": {"title": "Lamp 2"}}

    assert (await c.delete(td_url(td_id))).status_code == 204
    gone = await c.get(td_url(td_id))
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"


async def test_anonymous_td_gets_a_uuid_urn(server: LiveServer) -> None:
    c = server.client
    created = await c.post("/tdd/things", json=lamp(None), headers=TD_TYPE)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert location.startswith("/tdd/things/urn:uuid:")
    doc = (await c.get(location)).json()
    assert doc["id"] == location.removeprefix("/tdd/things/")
    assert_valid_td(doc)
    refused = await c.post("/tdd/things", json=lamp("urn:x:y"), headers=TD_TYPE)
    assert refused.status_code == 400 and "PUT" in refused.json()["detail"]


async def test_invalid_tds_are_refused_with_the_member_named(server: LiveServer) -> None:
    c = server.client
    no_forms = lamp("urn:x:1")
    del no_forms["properties"]["status"]["forms"]
    bad_op = lamp("urn:x:2")
    bad_op["actions"]["toggle"]["forms"][0]["op"] = "fly"
    cases = [
        (no_forms, "/properties/status"),
        (bad_op, "/actions/toggle/forms/0/op"),
        ({**lamp("urn:x:3"), "security": 7}, "/security"),
    ]
    for doc, pointer in cases:
        response = await c.put(td_url(doc["id"]), json=doc, headers=TD_TYPE)
        assert response.status_code == 400, response.text
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert pointer in problem["detail"], problem
    mismatch = await c.put(td_url("urn:x:4"), json=lamp("urn:x:5"), headers=TD_TYPE)
    assert mismatch.status_code == 400
    for body in (b"[]", b"not json", b'"text"'):
        response = await c.put(td_url("urn:x:6"), content=body, headers=TD_TYPE)
        assert response.status_code == 400, body
    assert (await c.get("/tdd/things")).json() == []


async def test_listing_pages_with_link_next_and_native_things_have_valid_tds(
    server: LiveServer,
) -> None:
    c = server.client
    for i in range(5):
        response = await c.put(td_url(f"urn:lamp:{i}"), json=lamp(f"urn:lamp:{i}"))
        assert response.status_code == 201
    native = {
        "id": "acme:pump-1",
        "kind": "pump",
        "attributes": {"title": "Pump 1"},
        "links": [{"rel": "hosted-by", "target": "acme:gw-1"}],
    }
    assert (await c.post("/api/v1/things", json=native)).status_code == 201
    twin = {"setpoint": 20.5, "mode": "eco"}
    await c.patch("/api/v1/things/acme:pump-1/twin/desired", json=twin)
    await c.patch("/api/v1/things/acme:pump-1/twin/reported", json={"temp": 19.0})

    seen: list[dict[str, Any]] = []
    url: str | None = "/tdd/things?limit=2"
    pages = 0
    while url is not None and pages < 10:
        response = await c.get(url)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/ld+json")
        seen.extend(response.json())
        link = response.headers.get("link")
        url = link.split(">")[0].lstrip("<") if link else None
        pages += 1
    assert pages == 3 and len(seen) == 6
    for doc in seen:
        assert_valid_td(doc)
    pump = next(d for d in seen if d["id"] == "acme:pump-1")
    assert pump["title"] == "Pump 1"
    assert {"setpoint", "mode", "temp"} <= set(pump["properties"])
    read = next(f for f in pump["properties"]["temp"]["forms"] if f["href"].startswith("http"))
    # The generated forms work: reading a property through its form gives the reported value.
    assert (await c.get(read["href"])).json() == 19.0

    collection = (await c.get("/tdd/things", params={"format": "collection", "limit": 4})).json()
    assert collection["@type"] == "ThingCollection" and collection["total"] == 6
    assert len(collection["members"]) == 4 and "offset=4" in collection["next"]
    bad = await c.get("/tdd/things", params={"limit": 0})
    assert bad.status_code == 400


async def test_property_routes_of_native_things(server: LiveServer) -> None:
    c = server.client
    await c.post("/api/v1/things", json={"id": "acme:fan-1", "kind": "fan"})
    await c.patch("/api/v1/things/acme:fan-1/twin/reported", json={"speed": 2})
    assert (await c.get("/api/v1/things/acme:fan-1/properties")).json() == {"speed": 2}
    assert (await c.get("/api/v1/things/acme:fan-1/properties/speed")).json() == 2
    missing = await c.get("/api/v1/things/acme:fan-1/properties/nope")
    assert missing.status_code == 404
    # Only ever reported: readOnly in its TD (tests/integration/api/test_property_writes.py).
    assert (await c.put("/api/v1/things/acme:fan-1/properties/speed", json=3)).status_code == 405
    await c.patch("/api/v1/things/acme:fan-1/twin/desired", json={"speed": 2})
    assert (await c.put("/api/v1/things/acme:fan-1/properties/speed", json=3)).status_code == 204
    twin = (await c.get("/api/v1/things/acme:fan-1/twin")).json()
    assert twin["desired"] == {"speed": 3} and twin["status"] == "pending"


async def test_jsonpath_search(server: LiveServer) -> None:
    c = server.client
    for i in range(3):
        await c.put(td_url(f"urn:lamp:{i}"), json=lamp(f"urn:lamp:{i}", title=f"Lamp {i}"))
    found = await c.get("/tdd/search/jsonpath", params={"query": "$[?@.title == 'Lamp 1'].id"})
    assert found.status_code == 200, found.text
    assert found.json() == ["urn:lamp:1"]
    regex = await c.get(
        "/tdd/search/jsonpath", params={"query": "$[?match(@.title, 'Lamp [02]')].title"}
    )
    assert sorted(regex.json()) == ["Lamp 0", "Lamp 2"]
    for query in ("$[?@.title ==", "title", "", "$" + "[0]" * 2000):
        response = await c.get("/tdd/search/jsonpath", params={"query": query})
        assert response.status_code == 400, query
        assert response.headers["content-type"] == "application/problem+json"


async def test_events_stream_and_resume(server: LiveServer) -> None:
    c = server.client
    received: list[tuple[str, str, dict[str, Any]]] = []

    async def listen(headers: dict[str, str], count: int) -> None:
        async with aconnect_sse(c, "GET", "/tdd/events", headers=headers) as source:
            async for sse in source.aiter_sse():
                if not sse.data:  # the `retry:` preamble
                    continue
                received.append((sse.id, sse.event, sse.json()))
                if len(received) >= count:
                    return

    task = asyncio.create_task(listen({}, 2))
    await asyncio.sleep(0.3)
    await c.put(td_url("urn:lamp:a"), json=lamp("urn:lamp:a"))
    await c.post("/api/v1/things", json={"id": "acme:pump-9", "kind": "pump"})
    await asyncio.wait_for(task, 10)
    assert [(e, d["id"]) for _, e, d in received] == [
        ("thing_created", "urn:lamp:a"),
        ("thing_created", "acme:pump-9"),
    ]
    last_id = received[-1][0]
    await c.delete(td_url("urn:lamp:a"))
    await c.put(td_url("urn:lamp:b"), json=lamp("urn:lamp:b"))
    # Resuming after the last event seen: nothing lost, nothing repeated.
    received.clear()
    await asyncio.wait_for(listen({"Last-Event-ID": last_id}, 2), 10)
    assert [(e, d["id"]) for _, e, d in received] == [
        ("thing_deleted", "urn:lamp:a"),
        ("thing_created", "urn:lamp:b"),
    ]
    # Twin changes are not directory notifications; diff=true carries the whole TD.
    received.clear()
    async with aconnect_sse(
        c, "GET", "/tdd/events/thing_created?diff=true", headers={"Last-Event-ID": last_id}
    ) as source:
        async for sse in source.aiter_sse():
            if sse.data:
                received.append((sse.id, sse.event, sse.json()))
                break
    assert received[0][2]["title"] == "Lamp" and received[0][2]["id"] == "urn:lamp:b"


async def test_well_known_wot_is_the_directory_td(server: LiveServer) -> None:
    async with server.anonymous() as anon:
        response = await anon.get("/.well-known/wot")
        assert response.status_code == 200
        doc = response.json()
        assert_valid_td(doc)
        assert "ThingDirectory" in doc["@type"]
        assert doc["security"] == ["bearer"]
        for path in ("/tdd/things", "/tdd/search/jsonpath?query=$", "/tdd/events"):
            refused = await anon.get(path)
            assert refused.status_code == 401, path


async def test_expensive_jsonpath_searches_are_cut_off(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from iotas.services import directory

    c = server.client
    for i in range(5):
        await c.put(td_url(f"urn:lamp:{i}"), json=lamp(f"urn:lamp:{i}"))
    # Every value of every TD: more than the (lowered) cap, refused with a way out.
    monkeypatch.setattr(directory, "MAX_RESULTS", 50)
    too_many = await c.get("/tdd/search/jsonpath", params={"query": "$..*"})
    assert too_many.status_code == 400 and "narrow it" in too_many.json()["detail"]
    # Out of time (the limit lowered to nothing): refused the same way.
    monkeypatch.setattr(directory, "MAX_RESULTS", 10_000)
    monkeypatch.setattr(directory, "SEARCH_SECONDS", 0.0)
    too_slow = await c.get("/tdd/search/jsonpath", params={"query": "$..*"})
    assert too_slow.status_code == 400 and "took longer" in too_slow.json()["detail"]
    # A pathological regular expression ends in its own time limit, not the server's.
    monkeypatch.setattr(directory, "SEARCH_SECONDS", 5.0)
    query = "$[?match(@.title, '(a|aa)*b')]"
    await c.put(td_url("urn:lamp:x"), json=lamp("urn:lamp:x", title="a" * 5000))
    started = asyncio.get_running_loop().time()
    answer = await c.get("/tdd/search/jsonpath", params={"query": query})
    assert answer.status_code in (200, 400)
    assert asyncio.get_running_loop().time() - started < 5
