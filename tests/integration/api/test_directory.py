"""The W3C WoT Thing Description Directory under /tdd, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from httpx_sse import aconnect_sse

from support import LiveServer
from td_check import assert_valid_td

TD_TYPE = {"content-type": "application/td+json"}
DISCOVERY = "https://www.w3.org/2022/wot/discovery"


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


def as_registered(enriched: dict[str, Any]) -> dict[str, Any]:
    """An Enriched TD without what enriching added: the `registration` member and the
    Discovery context (appended last to `@context`)."""
    assert set(enriched["registration"]) >= {"created", "modified", "retrieved"}
    doc = {k: v for k, v in enriched.items() if k != "registration"}
    context = doc["@context"]
    assert context[-1] == DISCOVERY, context
    doc["@context"] = context[0] if len(context) == 2 else context[:-1]
    return doc


async def test_put_get_update_patch_delete(server: LiveServer) -> None:
    c = server.client
    td_id = "urn:dev:ops:32473-lamp-1"
    created = await c.put(td_url(td_id), json=lamp(td_id), headers=TD_TYPE)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == td_url(td_id)

    got = await c.get(td_url(td_id))
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("application/td+json")
    assert as_registered(got.json()) == lamp(td_id)  # served as registered, enriched
    assert_valid_td(got.json())
    plain = await c.get(td_url(td_id), params={"enriched": "false"})
    assert plain.json() == lamp(td_id)

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

    ready = asyncio.Event()  # the answer's headers are in: the stream's start is fixed

    async def listen(headers: dict[str, str], count: int) -> None:
        async with aconnect_sse(c, "GET", "/tdd/events", headers=headers) as source:
            ready.set()
            async for sse in source.aiter_sse():
                if not sse.data:  # the `retry:` preamble
                    continue
                received.append((sse.id, sse.event, sse.json()))
                if len(received) >= count:
                    return

    task = asyncio.create_task(listen({}, 2))
    await asyncio.wait_for(ready.wait(), 10)
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


def bare(td_id: str | None = "urn:example:bare-1") -> dict[str, Any]:
    """A TD with no forms at all (nothing to interact with, only metadata), nosec."""
    doc: dict[str, Any] = {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "title": "Bare sensor",
        "description": "registered by a discoverer, no interactions",
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "links": [{"href": "https://example.com/manual", "rel": "manual"}],
    }
    if td_id is not None:
        doc["id"] = td_id
    return doc


async def test_a_td_without_forms_comes_back_as_registered(server: LiveServer) -> None:
    c = server.client
    created = await c.put(td_url("urn:example:bare-1"), json=bare(), headers=TD_TYPE)
    assert created.status_code == 201, created.text
    got = (await c.get(td_url("urn:example:bare-1"))).json()
    # Its own id, title and security; no forms or properties added by iotas.
    assert got["id"] == "urn:example:bare-1" and got["title"] == "Bare sensor"
    assert got["security"] == "nosec_sc"
    assert got["securityDefinitions"] == {"nosec_sc": {"scheme": "nosec"}}
    assert "forms" not in got and "properties" not in got and "events" not in got
    assert as_registered(got) == bare()
    assert_valid_td(got)
    plain = await c.get(td_url("urn:example:bare-1"), params={"enriched": "false"})
    assert plain.json() == bare()
    # The same through listing and search.
    listed = (await c.get("/tdd/things")).json()
    assert [as_registered(d) for d in listed] == [bare()]
    assert (await c.get("/tdd/things", params={"enriched": "false"})).json() == [bare()]
    found = await c.get("/tdd/search/jsonpath", params={"query": "$[?@.title == 'Bare sensor']"})
    assert [as_registered(d) for d in found.json()] == [bare()]
    # Anonymous, without forms: its generated urn:uuid id and nothing else added.
    anonymous = await c.post("/tdd/things", json=bare(None), headers=TD_TYPE)
    assert anonymous.status_code == 201, anonymous.text
    doc = (await c.get(anonymous.headers["location"], params={"enriched": "false"})).json()
    assert doc == {**bare(None), "id": anonymous.headers["location"].removeprefix("/tdd/things/")}


async def test_native_things_keep_their_generated_td_and_are_not_written_here(
    server: LiveServer,
) -> None:
    c = server.client
    model = {"@type": "saref:Pump", "title": "ignored: a model"}
    made = await c.post(
        "/api/v1/things",
        json={"id": "acme:pump-2", "kind": "pump", "description": model},
    )
    assert made.status_code == 201, made.text
    generated = (await c.get(td_url("acme:pump-2"))).json()
    assert generated["id"] == "acme:pump-2" and "registration" not in generated
    assert generated["security"] != "nosec_sc" and generated["forms"]
    assert_valid_td(generated)
    # A native Thing's TD is generated: the directory does not take one for it.
    for response in (
        await c.put(td_url("acme:pump-2"), json=bare("acme:pump-2"), headers=TD_TYPE),
        await c.patch(
            td_url("acme:pump-2"),
            json={"title": "x"},
            headers={"content-type": "application/merge-patch+json"},
        ),
    ):
        assert response.status_code == 409, response.text
        assert "/api/v1/things/acme:pump-2" in response.json()["detail"]
    thing = (await c.get("/api/v1/things/acme:pump-2")).json()
    assert thing["description"] == model
    # A TD registered under a Thing id is a registration like any other.
    registered = await c.put(td_url("acme:lamp-9"), json=bare("acme:lamp-9"), headers=TD_TYPE)
    assert registered.status_code == 201, registered.text
    plain = await c.get(td_url("acme:lamp-9"), params={"enriched": "false"})
    assert plain.json() == bare("acme:lamp-9")


async def test_every_td_taken_in_is_validated_with_the_member_named(server: LiveServer) -> None:
    c = server.client
    patch_type = {"content-type": "application/merge-patch+json"}
    cases = [
        (await c.post("/tdd/things", json={}, headers=TD_TYPE), "/title"),
        (await c.post("/tdd/things", json={"title": "x"}, headers=TD_TYPE), "/security"),
        (await c.put(td_url("urn:x:junk"), json={"junk": 1}, headers=TD_TYPE), "/title"),
        (await c.put(td_url("urn:x:bad"), json={**bare("urn:x:bad"), "title": 7}), "/title"),
    ]
    assert (await c.put(td_url("urn:x:ok"), json=bare("urn:x:ok"))).status_code == 201
    cases += [
        (await c.patch(td_url("urn:x:ok"), json={"title": None}, headers=patch_type), "/title"),
        (
            await c.patch(td_url("urn:x:ok"), json={"security": "nope"}, headers=patch_type),
            "/security",
        ),
    ]
    for response, pointer in cases:
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["field"] == pointer, problem
        assert pointer in problem["detail"]
        if pointer == "/title":
            # WoT Discovery's machine-readable form of the same.
            assert {"field": pointer} in [
                {"field": e["field"]} for e in problem["validationErrors"]
            ], problem
    listed = (await c.get("/tdd/things", params={"enriched": "false"})).json()
    assert listed == [bare("urn:x:ok")]  # nothing invalid was stored, the patch undone
    # The Things API cannot slip an invalid TD under a registration either.
    thing_id = (await c.get("/api/v1/things")).json()["items"][0]["id"]
    sneaked = await c.patch(f"/api/v1/things/{thing_id}", json={"description": {"title": None}})
    assert sneaked.status_code == 400 and sneaked.json()["field"] == "/title", sneaked.text


async def test_head_answers_the_headers_of_get(server: LiveServer) -> None:
    c = server.client
    await c.put(td_url("urn:example:bare-1"), json=bare())
    for path in ("/tdd/things", td_url("urn:example:bare-1") + "?enriched=false"):
        got = await c.get(path)
        head = await c.head(path)
        assert head.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["content-length"] == str(len(got.content))
    assert (await c.head(td_url("urn:nothing:here"))).status_code == 404
    async with server.anonymous() as anon:
        assert (await anon.head("/tdd/things")).status_code == 401


async def test_registration_information(server: LiveServer) -> None:
    c = server.client
    url = td_url("urn:example:bare-1")
    assert (await c.put(url, json=bare())).status_code == 201
    first = (await c.get(url)).json()["registration"]
    assert first["created"] == first["modified"] and "expires" not in first
    assert first["retrieved"] >= first["modified"]

    # An update keeps `created`, moves `modified`; a `ttl` gives `expires` from then.
    with_ttl = {**bare(), "registration": {"ttl": 3600, "created": "2000-01-01T00:00:00Z"}}
    assert (await c.put(url, json=with_ttl)).status_code == 204
    second = (await c.get(url)).json()["registration"]
    assert second["created"] == first["created"] and second["modified"] > first["modified"]
    assert second["ttl"] == 3600
    assert _seconds(second["expires"]) - _seconds(second["modified"]) == pytest.approx(3600)
    # The registration is not part of the stored TD.
    assert (await c.get(url, params={"enriched": "false"})).json() == bare()

    # An empty merge patch renews a ttl (WoT Discovery 7.3.2.1.3).
    patch_type = {"content-type": "application/merge-patch+json"}
    assert (await c.patch(url, json={}, headers=patch_type)).status_code == 204
    third = (await c.get(url)).json()["registration"]
    assert third["modified"] > second["modified"] and third["expires"] > second["expires"]

    # `expires` alone is kept; `ttl` wins over it when both are given.
    at = (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    absolute = {**bare(), "registration": {"expires": at}}
    assert (await c.put(url, json=absolute)).status_code == 204
    fourth = (await c.get(url)).json()["registration"]
    assert fourth["expires"] == at.replace("Z", ".000000Z") and "ttl" not in fourth
    both = {**bare(), "registration": {"expires": at, "ttl": 60}}
    assert (await c.put(url, json=both)).status_code == 204
    fifth = (await c.get(url)).json()["registration"]
    assert fifth["ttl"] == 60 and fifth["expires"] < at

    for given, pointer in (
        ({"ttl": 0}, "/registration/ttl"),
        ({"ttl": "1h"}, "/registration/ttl"),
        ({"ttl": 1e300}, "/registration/ttl"),
        ({"expires": "2001-01-01T00:00:00Z"}, "/registration/expires"),
        ({"expires": "tomorrow"}, "/registration/expires"),
        ({"expires": "2999-01-01T00:00:00Z"}, "/registration/expires"),
    ):
        refused = await c.put(url, json={**bare(), "registration": given})
        assert refused.status_code == 400, given
        assert refused.json()["field"] == pointer, refused.json()


async def test_expired_registrations_disappear(server: LiveServer) -> None:
    c = server.client
    short = {**bare("urn:example:short"), "title": "Short", "registration": {"ttl": 0.5}}
    assert (await c.put(td_url("urn:example:short"), json=short)).status_code == 201
    assert (await c.put(td_url("urn:example:long"), json=bare("urn:example:long"))).is_success

    deadline = asyncio.get_running_loop().time() + 30
    while (await c.get(td_url("urn:example:short"))).status_code == 200:
        assert asyncio.get_running_loop().time() < deadline, "never expired"
        await asyncio.sleep(0.1)
    assert (await c.get(td_url("urn:example:short"))).status_code == 404
    listed = (await c.get("/tdd/things", params={"format": "collection"})).json()
    assert [d["id"] for d in listed["members"]] == ["urn:example:long"]
    assert listed["total"] == 1
    assert (await c.get("/tdd/search/jsonpath", params={"query": "$[*].title"})).json() == [
        "Bare sensor"
    ]
    patch_type = {"content-type": "application/merge-patch+json"}
    gone = await c.patch(td_url("urn:example:short"), json={}, headers=patch_type)
    assert gone.status_code == 404
    assert (await c.delete(td_url("urn:example:short"))).status_code == 404
    # Registering the id again is a new registration.
    again = await c.put(td_url("urn:example:short"), json=bare("urn:example:short"))
    assert again.status_code == 201, again.text


def _seconds(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()
