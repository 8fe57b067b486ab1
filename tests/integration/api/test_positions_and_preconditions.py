"""Positions past what the database holds (2^63-1), and If-Match as RFC 9110 reads it.

A seq or cursor above SQLite's and PostgreSQL's largest integer was a 500 on the journal
(OverflowError in the driver) and a stream that died with a traceback after its 200 on both
SSE routes; now each is a 400 problem before anything is read. `If-Match: *` was a 400."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from support import LiveServer

TOO_BIG = str(2**63)
LARGEST = str(2**63 - 1)
# Negative, not a number, a megabyte-free but huge digit string, a digit int() refuses.
BAD = [TOO_BIG, "-1", "abc", "9" * 5000, "\u00b2", "1e3", ""]


def _cursor(position: object) -> str:
    # json, not orjson: it writes integers of any size, as a forger would.
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def _header(name: str, value: str) -> dict[bytes, bytes]:
    return {name.encode(): value.encode("latin-1")}  # HTTP header values are bytes; '²' is one


def _is_problem(response: httpx.Response, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status


@pytest.mark.parametrize("after", BAD)
async def test_journal_after_out_of_range_is_a_400(server: LiveServer, after: str) -> None:
    _is_problem(await server.client.get("/api/v1/journal", params={"after": after}))


async def test_journal_accepts_the_largest_position(server: LiveServer) -> None:
    response = await server.client.get("/api/v1/journal", params={"after": LARGEST})
    assert response.status_code == 200
    assert response.json() == {"items": [], "next": None}


async def test_made_up_cursors_beyond_the_database_are_a_400(server: LiveServer) -> None:
    c = server.client
    assert (await c.post("/api/v1/things", json={"id": "acme:p", "kind": "pump"})).is_success
    for position in (2**63, 2**64 - 1, 2**70, -(2**63) - 1):
        cursor = _cursor({"seq": position})
        _is_problem(await c.get("/api/v1/journal", params={"cursor": cursor}))
        _is_problem(await c.get("/api/v1/things/acme:p/history", params={"cursor": cursor}))
        telemetry = _cursor({"from": {"t": position}})
        _is_problem(await c.get("/api/v1/things/acme:p/telemetry", params={"cursor": telemetry}))


STREAMS = ["/api/v1/events", "/tdd/events", "/tdd/events/thing_created"]


@pytest.mark.parametrize("path", STREAMS)
@pytest.mark.parametrize("last", BAD)
async def test_a_bad_last_event_id_is_a_400_before_the_stream(
    server: LiveServer, path: str, last: str
) -> None:
    async with server.client.stream("GET", path, headers=_header("Last-Event-ID", last)) as r:
        await r.aread()
        _is_problem(r)


@pytest.mark.parametrize("after", BAD)
async def test_a_bad_after_on_the_event_stream_is_a_400(server: LiveServer, after: str) -> None:
    async with server.client.stream("GET", "/api/v1/events", params={"after": after}) as r:
        await r.aread()
        _is_problem(r)


@pytest.mark.parametrize("path", STREAMS)
async def test_the_largest_position_streams(server: LiveServer, path: str) -> None:
    async with server.client.stream("GET", path, headers={"Last-Event-ID": LARGEST}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            assert line.startswith("retry:")  # the preamble: the stream is running
            break


async def test_if_match_star_and_lists(server: LiveServer) -> None:
    c = server.client
    assert (await c.post("/api/v1/things", json={"id": "acme:m", "kind": "pump"})).is_success
    url = "/api/v1/things/acme:m/twin/desired"

    async def patch(if_match: str, value: int) -> httpx.Response:
        return await c.patch(url, json={"v": value}, headers=_header("If-Match", if_match))

    # `*`: any current version (RFC 9110 13.1.1).
    first = await patch("*", 1)
    assert first.status_code == 200, first.text
    version = first.json()["version"]
    # A list matches when it names the current version, wherever in the list.
    listed = await patch(f'"{version + 5}", "{version}"', 2)
    assert listed.status_code == 200, listed.text
    version = listed.json()["version"]
    assert (await patch(f'"{version - 1}" , , W/"{version}"', 3)).status_code == 200
    stale = await patch(f'"{version - 1}", "{version + 7}"', 4)
    _is_problem(stale, 412)
    assert stale.json()["current_version"] == version + 1
    # Malformed tags, tags no version could be, and `*` inside a list: 400, not 412 or 500.
    for bad in ('"1", x', '"abc"', f'"{TOO_BIG}"', '"\u00b2"', ",", '*, "1"', '"1'):
        _is_problem(await patch(bad, 5))
    # The fast path (api/fast_twin.py) answers the same as the routed one.
    reported = "/api/v1/things/acme:m/twin/reported"
    assert (await c.patch(reported, json={"r": 1}, headers={"If-Match": "*"})).status_code == 200
    _is_problem(await c.patch(reported, json={"r": 1}, headers={"If-Match": "x"}))
