"""TDs that real WoT runtimes (wotpy, node-wot) serve, registered in the directory: each
comes back as registered, member for member; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import orjson

from support import LiveServer
from td_check import assert_valid_td

from .conftest import Peer

DISCOVERY = "https://www.w3.org/2022/wot/discovery"


async def _round_trip(server: LiveServer, peer: Peer) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        raw = (await client.get(peer.td_url)).content
    given: dict[str, Any] = orjson.loads(raw)
    assert_valid_td(given)
    c = server.client
    headers = {"content-type": "application/td+json"}
    if "id" in given:
        url = f"/tdd/things/{quote(given['id'], safe=':')}"
        assert (await c.put(url, content=raw, headers=headers)).status_code == 201
    else:
        created = await c.post("/tdd/things", content=raw, headers=headers)
        assert created.status_code == 201, created.text
        url = created.headers["location"]
        given = {**given, "id": url.removeprefix("/tdd/things/")}

    plain = orjson.loads((await c.get(url, params={"enriched": "false"})).content)
    enriched = orjson.loads((await c.get(url)).content)
    assert_valid_td(enriched)
    assert set(plain) == set(given) and set(enriched) == set(given) | {"registration"}
    # SQLite keeps the members' own order; PostgreSQL's jsonb orders object keys its way.
    postgres = (server.settings.database_url or "").startswith("postgresql")
    option = orjson.OPT_SORT_KEYS if postgres else 0
    for name, value in given.items():
        expected = orjson.dumps(value, option=option)
        assert orjson.dumps(plain[name], option=option) == expected, name
        if name != "@context":
            assert orjson.dumps(enriched[name], option=option) == expected, name
    context = given["@context"]
    assert enriched["@context"] == [
        *(context if isinstance(context, list) else [context]),
        DISCOVERY,
    ]


async def test_a_wotpy_td_round_trips(server: LiveServer, wotpy_lamp: Peer) -> None:
    await _round_trip(server, wotpy_lamp)


async def test_a_node_wot_td_round_trips(server: LiveServer, node_wot_lamp: Peer) -> None:
    await _round_trip(server, node_wot_lamp)
