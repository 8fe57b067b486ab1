"""The journal: events for every change, the feed, history, verify and time travel."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from iotas.domain import clock
from support import LiveServer, execute_raw


async def _create(c: httpx.AsyncClient, thing_id: str = "acme:p", **extra: Any) -> None:
    response = await c.post("/api/v1/things", json={"id": thing_id, "kind": "pump", **extra})
    assert response.status_code == 201, response.text


async def test_every_change_is_an_event_with_actor_cause_and_chain(server: LiveServer) -> None:
    c = server.client
    await _create(c)
    await c.patch(
        "/api/v1/things/acme:p", json={"labels": {"a": "b"}}, headers={"X-Iotas-Cause": "ticket 42"}
    )
    await c.patch("/api/v1/things/acme:p/twin/desired", json={"sp": 1})
    await c.patch("/api/v1/things/acme:p/twin/reported", json={"sp": 1})
    await c.delete("/api/v1/things/acme:p")
    events = (await c.get("/api/v1/journal")).json()["items"]
    assert [e["type"] for e in events] == [
        "thing_created",
        "thing_updated",
        "desired_changed",
        "reported_changed",
        "thing_deleted",
    ]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert all(e["actor"] == "admin" and len(e["hash"]) == 64 for e in events)
    assert events[1]["cause"] == "ticket 42"
    assert events[0]["cause"] == "POST /api/v1/things"
    assert events[1]["patch"] == {"labels": {"a": "b"}}
    assert events[4]["before"]["twin"]["desired"] == {"sp": 1}
    after = (await c.get("/api/v1/journal", params={"after": 3})).json()["items"]
    assert [e["seq"] for e in after] == [4, 5]
    verify = (await c.get("/api/v1/journal/verify")).json()
    assert verify == {"ok": True, "checked": 5, "first_bad_seq": None, "reason": None}


async def test_feed_and_history_paginate(server: LiveServer) -> None:
    c = server.client
    await _create(c, "acme:a")
    await _create(c, "acme:b")
    for i in range(12):
        await c.patch("/api/v1/things/acme:a/twin/reported", json={"n": i})
        await c.patch("/api/v1/things/acme:b/twin/reported", json={"n": i})
    seqs: list[int] = []
    page = (await c.get("/api/v1/journal", params={"limit": 5})).json()
    while True:
        seqs += [e["seq"] for e in page["items"]]
        if page["next"] is None:
            break
        page = (await c.get("/api/v1/journal", params={"limit": 5, "cursor": page["next"]})).json()
    assert seqs == list(range(1, 27))

    history: list[dict[str, Any]] = []
    page = (await c.get("/api/v1/things/acme:a/history", params={"limit": 4})).json()
    while True:
        history += page["items"]
        if page["next"] is None:
            break
        page = (
            await c.get(
                "/api/v1/things/acme:a/history", params={"limit": 4, "cursor": page["next"]}
            )
        ).json()
    assert len(history) == 13 and {e["thing_id"] for e in history} == {"acme:a"}
    middle = history[6]["ts"]
    since = (await c.get("/api/v1/things/acme:a/history", params={"since": middle})).json()
    assert since["items"][0]["seq"] == history[6]["seq"]
    until = (await c.get("/api/v1/things/acme:a/history", params={"until": middle})).json()
    assert until["items"][-1]["seq"] == history[6]["seq"]


async def test_at_returns_exactly_the_state_after_the_earlier_change(server: LiveServer) -> None:
    c = server.client
    await _create(c, attributes={"v": 0})
    states: list[tuple[str, dict[str, Any]]] = []
    states.append((clock.to_rfc3339(clock.now_us()), (await c.get("/api/v1/things/acme:p")).json()))
    for i in range(1, 15):
        if i % 3 == 0:
            await c.patch("/api/v1/things/acme:p", json={"attributes": {"v": i}})
        elif i % 3 == 1:
            await c.patch("/api/v1/things/acme:p/twin/desired", json={"sp": i})
        else:
            await c.patch("/api/v1/things/acme:p/twin/reported", json={"sp": i - 1, "x": {"i": i}})
        await asyncio.sleep(0.002)
        states.append(
            (clock.to_rfc3339(clock.now_us()), (await c.get("/api/v1/things/acme:p")).json())
        )
    for instant, expected in states:
        got = await c.get("/api/v1/things/acme:p", params={"at": instant})
        assert got.status_code == 200
        assert got.json() == expected

    history = (await c.get("/api/v1/things/acme:p/history")).json()["items"]
    first_ts = history[0]["ts"]
    exact = (await c.get("/api/v1/things/acme:p", params={"at": first_ts})).json()
    assert exact["revision"] == 1
    before_creation = clock.to_rfc3339(clock.parse_rfc3339(first_ts) - 1)
    assert (await c.get("/api/v1/things/acme:p", params={"at": before_creation})).status_code == 404

    last_state = states[-1][1]
    await c.delete("/api/v1/things/acme:p")
    assert (await c.get("/api/v1/things/acme:p")).status_code == 404
    ghost = await c.get("/api/v1/things/acme:p", params={"at": states[-1][0]})
    assert ghost.status_code == 200 and ghost.json() == last_state
    # Offsets other than Z name the same instant.
    z = clock.parse_rfc3339(states[5][0])
    shifted = clock.to_rfc3339(z).replace("Z", "+00:00")
    assert (await c.get("/api/v1/things/acme:p", params={"at": shifted})).json() == states[5][1]


async def test_concurrent_writers_get_gap_free_ordered_seqs(server: LiveServer) -> None:
    c = server.client
    for i in range(8):
        await _create(c, f"acme:w{i}")

    async def writer(i: int) -> None:
        for n in range(20):
            r = await c.patch(f"/api/v1/things/acme:w{i}/twin/reported", json={"n": n})
            assert r.status_code == 200

    await asyncio.gather(*(writer(i) for i in range(8)))
    events = (await c.get("/api/v1/journal", params={"limit": 1000})).json()["items"]
    assert [e["seq"] for e in events] == list(range(1, 8 + 8 * 20 + 1))
    timestamps = [e["ts"] for e in events]
    assert timestamps == sorted(timestamps)
    assert (await c.get("/api/v1/journal/verify")).json()["ok"] is True


async def _tamper(server: LiveServer, sql: str) -> None:
    assert server.settings.database_url is not None
    await execute_raw(server.settings.database_url, sql)


@pytest.mark.parametrize(
    ("sql", "bad_seq"),
    [
        ("UPDATE journal SET body = replace(body, '\"n\":3', '\"n\":4') WHERE seq = 5", 5),
        ("DELETE FROM journal WHERE seq = 4", 4),
        ("UPDATE journal SET record_id = 'acme:other' WHERE seq = 6", 6),
        ("UPDATE journal SET hash = 'x' WHERE seq = 3", 3),
        # Reorder: swap the bodies and hashes of 4 and 5.
        (
            "UPDATE journal SET seq = -1 WHERE seq = 4; UPDATE journal SET seq = 4 WHERE seq = 5; "
            "UPDATE journal SET seq = 5 WHERE seq = -1",
            4,
        ),
        ("DELETE FROM journal WHERE seq = 8", 8),
    ],
    ids=["edit-body", "delete-middle", "edit-column", "edit-hash", "reorder", "delete-last"],
)
async def test_verify_names_the_first_bad_seq(server: LiveServer, sql: str, bad_seq: int) -> None:
    c = server.client
    await _create(c)
    for n in range(7):
        await c.patch("/api/v1/things/acme:p/twin/reported", json={"n": n})
    assert (await c.get("/api/v1/journal/verify")).json()["ok"] is True
    for statement in sql.split("; "):
        await _tamper(server, statement)
    result = (await c.get("/api/v1/journal/verify")).json()
    assert result["ok"] is False
    assert result["first_bad_seq"] == bad_seq, result
    assert result["reason"]


async def test_head_names_the_newest_event_and_causes_carry_unicode(server: LiveServer) -> None:
    c = server.client
    empty = (await c.get("/api/v1/journal/head")).json()
    assert empty == {"seq": 0, "hash": "0" * 64, "ts": None}
    await _create(c)
    cause = "Wartung – Ventil getauscht 100%"
    quoted = "Wartung%20%E2%80%93%20Ventil%20getauscht%20100%25"
    r = await c.patch(
        "/api/v1/things/acme:p/twin/desired", json={"a": 1}, headers={"X-Iotas-Cause": quoted}
    )
    assert r.status_code == 200
    head = (await c.get("/api/v1/journal/head")).json()
    events = (await c.get("/api/v1/journal")).json()["items"]
    assert (
        head["seq"] == 2 and head["hash"] == events[-1]["hash"] and head["ts"] == events[-1]["ts"]
    )
    assert events[-1]["cause"] == cause
    bad = await c.patch(
        "/api/v1/things/acme:p/twin/desired", json={"a": 2}, headers={"X-Iotas-Cause": "%FF%FE"}
    )
    assert bad.status_code == 400
