"""Provisioning through the operator API (served by an httpx mock transport)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from iotas.sdk import ApiError, Client
from iotas.sim import Fleet, plan_fleet
from iotas.sim.actions import MODEL
from iotas.sim.provision import provision

Handler = Callable[[httpx.Request], httpx.Response]


def fake_api(existing: set[str], refuse: str | None = None) -> tuple[Handler, list[str]]:
    """Things already in `existing` answer 409; credentials get `secret-<id>`."""
    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        calls.append(f"{request.method} {path}")
        if request.method == "POST" and path == "/api/v1/things":
            body = json.loads(request.content)
            if body["id"] == refuse:
                return httpx.Response(403, json={"title": "Forbidden", "detail": "viewer"})
            if body["id"] in existing:
                return httpx.Response(409, json={"title": "Conflict", "detail": "exists"})
            existing.add(body["id"])
            assert body["kind"] in {"sensor", "pump", "gateway"}
            assert body["labels"]["tier"] in {"edge", "core"}
            assert request.headers["X-Iotas-Cause"] == "iotas simulate"
            assert body["description"] == MODEL  # declares the actions it answers
            return httpx.Response(201, json=body)
        if request.method == "PATCH" and path.startswith("/api/v1/things/"):
            assert json.loads(request.content) == {"description": MODEL}
            return httpx.Response(200, json={})
        if request.method == "POST" and path.endswith("/credentials"):
            thing_id = path.split("/")[4]
            assert json.loads(request.content) == {"type": "password"}
            assert thing_id in existing
            return httpx.Response(
                201, json={"id": "c1", "thing_id": thing_id, "type": "password",
                           "secret": f"secret-{thing_id}"},
            )  # fmt: skip
        return httpx.Response(404, json={"title": "Not found"})

    return handle, calls


async def test_creates_missing_things_reuses_others_and_makes_a_password_each() -> None:
    things = plan_fleet(25, namespace="p")
    existing = {things[0].id, things[7].id}
    handle, calls = fake_api(existing)
    progress: list[int] = []
    async with Client("http://iotas.test", "t", transport=httpx.MockTransport(handle)) as client:
        result = await provision(
            client, things, concurrency=4, progress=lambda d, _: progress.append(d)
        )
    assert (result.created, result.reused) == (23, 2)
    assert result.secrets == {t.id: f"secret-{t.id}" for t in things}
    assert sorted(progress) == list(range(1, 26))
    assert sum(c.endswith("/credentials") for c in calls) == 25
    # The Things made by an earlier run get today's model of the actions.
    assert sorted(c for c in calls if c.startswith("PATCH")) == sorted(
        f"PATCH /api/v1/things/{things[i].id}" for i in (0, 7)
    )


async def test_the_fleet_keeps_the_secrets_for_its_devices() -> None:
    handle, _ = fake_api(set())
    async with Client("http://iotas.test", "t", transport=httpx.MockTransport(handle)) as client:
        fleet = Fleet(client, devices=3, rate=1.0, namespace="f")
        await fleet.provision()
    assert fleet.secrets == {t.id: f"secret-{t.id}" for t in fleet.things}


async def test_other_errors_stop_provisioning() -> None:
    things = plan_fleet(10, namespace="p")
    handle, _ = fake_api(set(), refuse=things[3].id)
    async with Client("http://iotas.test", "t", transport=httpx.MockTransport(handle)) as client:
        with pytest.raises(ApiError) as caught:
            await provision(client, things, concurrency=2)
    assert caught.value.status == 403


async def test_a_fleet_without_a_client_cannot_provision() -> None:
    with pytest.raises(RuntimeError, match="operator Client"):
        await Fleet(None, devices=1, rate=1.0).provision()
