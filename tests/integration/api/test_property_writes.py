"""Writing a property through its TD form honours the TD: a readOnly property answers 405
(with Allow), a value its data schema refuses answers 422 naming the violation; nothing is
changed either way. For a native Thing (its TD generated from its model and twin) and for a
Thing registered with a TD of its own."""

from __future__ import annotations

from typing import Any

from support import LiveServer

MODEL = {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    "title": "Lamp",
    "properties": {
        "brightness": {"type": "integer", "minimum": 0, "maximum": 100},
        "mode": {"type": "string", "enum": ["eco", "boost"]},
        "status": {"type": "string", "readOnly": True},
    },
}


def lamp_td(td_id: str) -> dict[str, Any]:
    return {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": td_id,
        "title": "Lamp",
        "securityDefinitions": {"nosec": {"scheme": "nosec"}},
        "security": "nosec",
        "properties": {
            "level": {
                "type": "number",
                "maximum": 10,
                "forms": [{"href": "http://192.0.2.1/level"}],
            },
            # wotpy writes data schemas with an empty oneOf: it constrains nothing here.
            "label": {
                "type": "string",
                "oneOf": [],
                "forms": [{"href": "http://192.0.2.1/label"}],
            },
            "temp": {
                "type": "number",
                "readOnly": True,
                "forms": [{"href": "http://192.0.2.1/temp"}],
            },
        },
    }


async def _desired(server: LiveServer, thing_id: str) -> dict[str, Any]:
    twin: dict[str, Any] = (await server.client.get(f"/api/v1/things/{thing_id}/twin")).json()
    return dict(twin["desired"])


async def test_writes_honour_the_native_tds_schemas(server: LiveServer) -> None:
    c = server.client
    thing = "/api/v1/things/acme:lamp-1"
    made = await c.post(
        "/api/v1/things", json={"id": "acme:lamp-1", "kind": "lamp", "description": MODEL}
    )
    assert made.status_code == 201, made.text
    await c.patch(f"{thing}/twin/reported", json={"fw": "1.0", "status": "ok"})

    for name, value in (("status", "hot"), ("fw", "2.0")):  # declared / only ever reported
        refused = await c.put(f"{thing}/properties/{name}", json=value)
        assert refused.status_code == 405, refused.text
        assert refused.headers["allow"] == "GET, HEAD"
        assert refused.headers["content-type"] == "application/problem+json"
        assert "readOnly" in refused.json()["detail"]

    over = await c.put(f"{thing}/properties/brightness", json=500)
    assert over.status_code == 422, over.text
    problem = over.json()
    assert over.headers["content-type"] == "application/problem+json"
    assert "500 is greater than the maximum of 100" in problem["detail"]
    assert problem["keyword"] == "maximum"
    wrong_values: list[tuple[str, object]] = [("brightness", "bright"), ("brightness", 5.5)]
    for name, bad in [*wrong_values, ("mode", "turbo")]:
        wrong = await c.put(f"{thing}/properties/{name}", json=bad)
        assert wrong.status_code == 422, (name, bad, wrong.text)
    assert await _desired(server, "acme:lamp-1") == {}

    assert (await c.put(f"{thing}/properties/brightness", json=100)).status_code == 204
    assert (await c.put(f"{thing}/properties/mode", json="eco")).status_code == 204
    # A property nobody has named yet may be set on a native Thing: it becomes one, with a
    # schema guessed from its value (any number, here).
    assert (await c.put(f"{thing}/properties/speed", json=3)).status_code == 204
    assert (await c.put(f"{thing}/properties/speed", json=3.5)).status_code == 204
    assert (await c.put(f"{thing}/properties/speed", json="fast")).status_code == 422
    assert await _desired(server, "acme:lamp-1") == {
        "brightness": 100,
        "mode": "eco",
        "speed": 3.5,
    }


async def test_writes_honour_a_registered_td(server: LiveServer) -> None:
    c = server.client
    put = await c.put("/tdd/things/urn:dev:lamp-9", json=lamp_td("urn:dev:lamp-9"))
    assert put.status_code == 201, put.text
    listed = (await c.get("/api/v1/things")).json()["items"]
    ids = [t["id"] for t in listed if (t.get("description") or {}).get("id") == "urn:dev:lamp-9"]
    assert len(ids) == 1, listed
    thing = f"/api/v1/things/{ids[0]}"

    assert (await c.put(f"{thing}/properties/temp", json=20)).status_code == 405
    assert (await c.put(f"{thing}/properties/level", json=11)).status_code == 422
    assert (await c.put(f"{thing}/properties/nothing", json=1)).status_code == 404
    assert (await c.put(f"{thing}/properties/level", json=9.5)).status_code == 204
    assert (await c.put(f"{thing}/properties/label", json="hall")).status_code == 204
    assert await _desired(server, ids[0]) == {"level": 9.5, "label": "hall"}
