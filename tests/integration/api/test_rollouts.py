"""Rollouts over HTTP on both backends, with the node's own controller: 201 with the id, a bad
spec is a 400 naming the member, counts per status and per wave, the Things by status, pause,
resume and cancel (409 where the status does not allow it), and who may do what."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from integration.api.test_roles import make_token
from iotas.runtime import Runtime
from iotas.services.rollout_kinds import Outcome
from rollout_support import ScriptedKind, fleet, wait_for
from support import LiveServer, live_server

TARGET = 'attributes.site == "plant-7"'


@pytest.fixture
async def served(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[LiveServer, Runtime]]:
    async with live_server(database_url, tmp_path / "data") as (live, app):
        yield live, app.state.runtime


def spec(**extra: Any) -> dict[str, Any]:
    return {"name": "test", "target": TARGET, "change": {"type": "test"}, **extra}


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


async def test_a_rollout_over_http(served: tuple[LiveServer, Runtime]) -> None:
    server, rt = served
    held = {"on": True}
    kind = ScriptedKind(lambda _t: None if held["on"] else Outcome("succeeded"))
    rt.rollouts.kinds.register(kind)
    await fleet(rt, 12)
    client = server.client
    made = await client.post(
        "/api/v1/rollouts",
        json=spec(waves=[{"count": 2}, {"percent": 50, "wait": 0}], max_in_flight=5),
    )
    assert made.status_code == 201, made.text
    rollout = made.json()
    rollout_id = rollout["id"]
    assert made.headers["location"] == f"/api/v1/rollouts/{rollout_id}"
    assert rollout["status"] == "running" and rollout["total"] == 12
    assert [w["size"] for w in rollout["waves"]] == [2, 6, 4]

    async def get() -> dict[str, Any]:
        response = await client.get(f"/api/v1/rollouts/{rollout_id}")
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    got = await wait_for(get, lambda r: r["counts"]["in_flight"] == 2)
    assert got["waves"][0]["counts"]["in_flight"] == 2
    flying = await client.get(
        f"/api/v1/rollouts/{rollout_id}/things", params={"status": "in_flight"}
    )
    assert [t["wave"] for t in flying.json()["items"]] == [0, 0]
    problem(await client.get(f"/api/v1/rollouts/{rollout_id}/things?status=odd"), 400)

    paused = await client.post(f"/api/v1/rollouts/{rollout_id}/pause")
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    problem(await client.post(f"/api/v1/rollouts/{rollout_id}/pause"), 409)
    held["on"] = False
    await wait_for(get, lambda r: r["counts"]["succeeded"] == 2)
    assert (await get())["waves"][1]["counts"]["in_flight"] == 0  # paused: nothing starts
    resumed = await client.post(f"/api/v1/rollouts/{rollout_id}/resume")
    assert resumed.json()["status"] == "running"
    done = await wait_for(get, lambda r: r["status"] == "succeeded")
    assert done["counts"]["succeeded"] == 12 and done["finished"] is not None
    problem(await client.post(f"/api/v1/rollouts/{rollout_id}/cancel"), 409)
    problem(await client.post(f"/api/v1/rollouts/{rollout_id}/resume"), 409)

    listed = await client.get("/api/v1/rollouts", params={"status": "succeeded,halted"})
    assert [r["id"] for r in listed.json()["items"]] == [rollout_id]
    assert (await client.get("/api/v1/rollouts", params={"status": "running"})).json()[
        "items"
    ] == []
    problem(await client.get("/api/v1/rollouts/ro-nothing"), 404)
    problem(await client.post("/api/v1/rollouts/ro-nothing/pause"), 404)


async def test_cancel_and_a_scheduled_rollout(served: tuple[LiveServer, Runtime]) -> None:
    server, rt = served
    rt.rollouts.kinds.register(ScriptedKind(lambda _t: None))
    await fleet(rt, 4)
    later = await server.client.post("/api/v1/rollouts", json=spec(start_at="2099-01-01T00:00:00Z"))
    assert later.json()["status"] == "scheduled" and later.json()["total"] == 0
    paused = await server.client.post(f"/api/v1/rollouts/{later.json()['id']}/pause")
    assert paused.json()["status"] == "paused"
    resumed = await server.client.post(f"/api/v1/rollouts/{later.json()['id']}/resume")
    assert resumed.json()["status"] == "scheduled" and resumed.json()["total"] == 0
    cancelled = await server.client.post(f"/api/v1/rollouts/{later.json()['id']}/cancel")
    assert cancelled.json()["status"] == "cancelled"


BAD: list[tuple[dict[str, Any], str | None]] = [
    ({"target": TARGET, "change": {"type": "test"}}, "name"),
    (spec(target="attributes.site =="), "target"),
    (spec(change={"type": "nope"}), "change/type"),
    (spec(waves=[]), "waves"),
    (spec(waves=[{"count": 1, "percent": 5}]), "waves/0"),
    (spec(waves=[{"percent": 120}]), "waves/0/percent"),
    (spec(success_threshold={"percent": 0}), "success_threshold/percent"),
    (spec(failure_threshold={}), "failure_threshold"),
    (spec(max_in_flight=0), "max_in_flight"),
    (spec(window={"start": "25:00", "end": "04:00"}), "window/start"),
    (spec(window={"start": "22:00", "end": "04:00", "tz": "Mars/Base"}), "window/tz"),
    (spec(start_at="tomorrow"), "start_at"),
    (spec(colour="blue"), None),
]


async def test_a_bad_spec_is_a_400_naming_the_member(served: tuple[LiveServer, Runtime]) -> None:
    server, rt = served
    rt.rollouts.kinds.register(ScriptedKind())
    for body, member in BAD:
        found = problem(await server.client.post("/api/v1/rollouts", json=body), 400)
        if member is not None:
            assert found.get("field") == member or member in found["detail"], found


async def test_who_may_do_what(served: tuple[LiveServer, Runtime]) -> None:
    server, rt = served
    rt.rollouts.kinds.register(ScriptedKind())
    viewer = await make_token(server, "viewer")
    limited = await make_token(server, "operator", namespaces=["acme"])
    made = (await server.client.post("/api/v1/rollouts", json=spec())).json()
    async with server.anonymous() as anon:
        as_viewer = {"Authorization": f"Bearer {viewer}"}
        assert (await anon.get("/api/v1/rollouts", headers=as_viewer)).status_code == 200
        problem(await anon.post("/api/v1/rollouts", json=spec(), headers=as_viewer), 403)
        problem(await anon.post(f"/api/v1/rollouts/{made['id']}/pause", headers=as_viewer), 403)
        as_limited = {"Authorization": f"Bearer {limited}"}
        problem(await anon.get("/api/v1/rollouts", headers=as_limited), 403)
        problem(await anon.post("/api/v1/rollouts", json=spec(), headers=as_limited), 403)
        problem(await anon.get("/api/v1/rollouts"), 401)
