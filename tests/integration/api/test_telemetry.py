"""Telemetry through the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from typing import Any

import pytest

from iotas.domain import clock
from support import LiveServer

MINUTE = 60_000_000
# A whole hour back, so every sample is in the past and buckets are aligned minutes.
BASE = (clock.now_us() // MINUTE - 60) * MINUTE
TELEMETRY = "/api/v1/things/acme:s1/telemetry"


def ts(us: int) -> str:
    return clock.to_rfc3339(us)


def rfc_window(start_us: int, end_us: int) -> dict[str, str]:
    return {"from": ts(start_us), "to": ts(end_us)}


async def make_sensor(server: LiveServer, thing_id: str = "acme:s1") -> None:
    response = await server.client.post("/api/v1/things", json={"id": thing_id, "kind": "sensor"})
    assert response.status_code == 201


# 40 records 7 s apart over about 5 minutes: a number that moves irregularly, a number sent
# only sometimes, and a string, so buckets are uneven and some hold no numbers.
RECORDS: list[dict[str, Any]] = [
    {
        "ts": ts(BASE + i * 7_000_000),
        "temp": round(20 + 3 * math.sin(i) + (i % 5) * 0.25, 3),
        **({"hum": float(40 + i)} if i % 3 == 0 else {}),
        **({"state": "on" if i % 2 else "off"} if i % 4 == 0 else {}),
    }
    for i in range(40)
]


def expected_buckets(key: str, agg: str, bucket_us: int) -> list[dict[str, Any]]:
    by_bucket: dict[int, list[tuple[int, Any]]] = defaultdict(list)
    for record in RECORDS:
        if key in record:
            at = clock.parse_rfc3339(record["ts"])
            by_bucket[at // bucket_us * bucket_us].append((at, record[key]))
    out = []
    for start in sorted(by_bucket):
        points = by_bucket[start]
        numbers = [v for _, v in points if isinstance(v, int | float)]
        if agg == "count":
            value: Any = len(points)
        elif agg == "last":
            value = max(points, key=lambda p: p[0])[1]
        elif not numbers:
            continue
        else:
            value = {"avg": sum(numbers) / len(numbers), "min": min(numbers), "max": max(numbers)}[
                agg
            ]
        out.append({"ts": ts(start), "value": value})
    return out


async def test_post_then_query_raw_samples_within_bounds(server: LiveServer) -> None:
    c = server.client
    await make_sensor(server)
    posted = await c.post(TELEMETRY, json=RECORDS)
    assert posted.status_code == 202, posted.text
    assert posted.json() == {"stored": sum(len(r) - 1 for r in RECORDS)}

    # from is inclusive, to exclusive.
    window = rfc_window(BASE + 7_000_000, BASE + 35_000_000)
    got = await c.get(TELEMETRY, params={"keys": "temp,state", **window})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["thing_id"] == "acme:s1" and body["next"] is None
    assert (body["from"], body["to"], body["bucket"], body["agg"]) == (
        window["from"],
        window["to"],
        None,
        None,
    )
    assert body["keys"] == {
        "temp": [[r["ts"], r["temp"]] for r in RECORDS[1:5]],
        "state": [[RECORDS[4]["ts"], "off"]],
    }
    # Without keys: every key; without from: the last day.
    everything = (await c.get(TELEMETRY)).json()
    assert sorted(everything["keys"]) == ["hum", "state", "temp"]
    assert len(everything["keys"]["temp"]) == 40 and everything["to"] is None


async def test_every_aggregate_matches_python(server: LiveServer) -> None:
    c = server.client
    await make_sensor(server)
    assert (await c.post(TELEMETRY, json=RECORDS)).status_code == 202
    for agg, bucket, bucket_us in (
        (agg, bucket, bucket_us)
        for agg in ("avg", "min", "max", "count", "last")
        for bucket, bucket_us in (("1m", MINUTE), ("30s", 30_000_000))
    ):
        got = await c.get(
            TELEMETRY,
            params={"bucket": bucket, "agg": agg, **rfc_window(BASE, BASE + 3600_000_000)},
        )
        assert got.status_code == 200, got.text
        body = got.json()
        assert (body["bucket"], body["agg"]) == (bucket, agg)
        for key in ("temp", "hum", "state"):
            want = expected_buckets(key, agg, bucket_us)
            have = body["keys"][key]
            assert [p["ts"] for p in have] == [p["ts"] for p in want], (key, bucket)
            for h, w in zip(have, want, strict=True):
                if isinstance(w["value"], str):
                    assert h["value"] == w["value"], (key, bucket, h)
                else:
                    assert h["value"] == pytest.approx(w["value"], rel=1e-12), (key, bucket, h)


async def test_pages_continue_with_the_cursor(server: LiveServer) -> None:
    c = server.client
    await make_sensor(server)
    await c.post(TELEMETRY, json=RECORDS)
    for params, expected in (
        ({}, [[r["ts"], r["temp"]] for r in RECORDS]),
        ({"bucket": "1m", "agg": "max"}, expected_buckets("temp", "max", MINUTE)),
    ):
        pages: list[Any] = []
        query: dict[str, Any] = {"keys": "temp,hum", "limit": 3, "from": ts(BASE), **params}
        for _ in range(100):
            body = (await c.get(TELEMETRY, params=query)).json()
            pages += body["keys"].get("temp", [])
            if body["next"] is None:
                break
            query["cursor"] = body["next"]
        assert pages == expected


async def test_latest_values(server: LiveServer) -> None:
    c = server.client
    await make_sensor(server)
    assert (await c.get(f"{TELEMETRY}/latest")).json() == {}
    await c.post(TELEMETRY, json=RECORDS)
    await c.post(TELEMETRY, json={"ts": ts(BASE), "temp": -1})  # late: not the latest
    before = clock.now_us()
    await c.post(TELEMETRY, json={"gps": {"lat": 48.1, "lon": 11.6}, "ok": True})
    latest = (await c.get(f"{TELEMETRY}/latest")).json()
    assert latest["temp"] == {"ts": RECORDS[-1]["ts"], "value": RECORDS[-1]["temp"]}
    assert latest["hum"] == {"ts": RECORDS[39]["ts"], "value": 79.0}
    assert latest["state"] == {"ts": RECORDS[36]["ts"], "value": "off"}
    assert latest["gps"]["value"] == {"lat": 48.1, "lon": 11.6}
    assert latest["ok"]["value"] is True
    assert before <= clock.parse_rfc3339(latest["ok"]["ts"]) <= clock.now_us()
    thing = (await c.get("/api/v1/things/acme:s1")).json()
    assert thing["last_seen"] is not None


async def test_unknown_things_are_404_and_bad_ids_400(server: LiveServer) -> None:
    c = server.client
    for response in (
        await c.post("/api/v1/things/acme:nope/telemetry", json={"temp": 1}),
        await c.get("/api/v1/things/acme:nope/telemetry"),
        await c.get("/api/v1/things/acme:nope/telemetry/latest"),
    ):
        assert response.status_code == 404, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert (await c.get("/api/v1/things/NOPE/telemetry")).status_code == 400
    assert (await c.post("/api/v1/things/NOPE/telemetry", json={"t": 1})).status_code == 400


REJECTED: list[tuple[Any, str]] = [
    ({"$t": 1}, "bad_key"),
    ({}, "empty"),
    ([{"ts": "noon", "t": 1}], "bad_timestamp"),
    ([{"ts": 946_684_799_999, "t": 1}], "bad_timestamp"),
    ({"t": None}, "bad_value"),
    ([{"t": i} for i in range(1001)], "too_many_samples"),
    (42, "bad_shape"),
]


async def test_rejected_payloads_are_400_with_the_reason_and_store_nothing(
    server: LiveServer,
) -> None:
    await make_sensor(server)
    for payload, reason in REJECTED:
        # One bad record spoils the message: nothing of it is stored.
        response = await server.client.post(TELEMETRY, json=[{"ok": 1}, payload])
        if not isinstance(payload, dict):
            response = await server.client.post(TELEMETRY, json=payload)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["reason"] == reason, payload
    assert (await server.client.get(f"{TELEMETRY}/latest")).json() == {}


async def test_bad_bodies_and_queries_are_400(server: LiveServer) -> None:
    c = server.client
    await make_sensor(server)
    for body in (b"{not json", b'{"t": NaN}', b""):
        response = await c.post(
            TELEMETRY, content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 400, response.text
    for params in (
        {"bucket": "1w"},
        {"bucket": "1m", "agg": "median"},
        {"agg": "avg"},
        {"from": "yesterday"},
        {"to": "2026-11-22T08:00:00"},
        {"from": ts(BASE), "to": ts(BASE)},
        {"keys": "te mp"},
        {"keys": ","},
        {"limit": 0},
        {"limit": 10_001},
        {"cursor": "garbage"},
        {"cursor": "eyJmcm9tIjp7IiQiOjF9fQ"},  # {"from": {"$": 1}}
    ):
        response = await c.get(TELEMETRY, params=params)
        assert response.status_code == 400, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"


async def test_a_silent_transmit_only_thing_turns_unreachable(server: LiveServer) -> None:
    c = server.client
    thing = {"id": "acme:beacon", "kind": "beacon", "attributes": {"expected_interval": 1}}
    assert (await c.post("/api/v1/things", json=thing)).status_code == 201
    # Never heard from: not judged.
    assert (await c.get("/api/v1/things/acme:beacon/twin")).json()["status"] == "in_sync"
    assert (await c.post("/api/v1/things/acme:beacon/telemetry", json={"v": 1})).status_code == 202
    fresh = (await c.get("/api/v1/things/acme:beacon")).json()
    assert fresh["last_seen"] is not None and fresh["twin"]["status"] == "in_sync"
    await asyncio.sleep(1.3)  # last_seen moves at most once a second: the interval is 1 s
    assert (await c.get("/api/v1/things/acme:beacon/twin")).json()["status"] == "unreachable"
    listed = (await c.get("/api/v1/things", params={"q": 'kind == "beacon"'})).json()
    assert listed["items"][0]["twin"]["status"] == "unreachable"
    assert (await c.post("/api/v1/things/acme:beacon/telemetry", json={"v": 2})).status_code == 202
    assert (await c.get("/api/v1/things/acme:beacon/twin")).json()["status"] == "in_sync"
