"""The embedded broker: devices log in with iotas credentials, stay in their own topics, and
get a PUBACK only for what iotas has committed. paho-mqtt plays the device."""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as paho
import pytest
import uvicorn

from iotas.api.app import create_app
from iotas.broker.embedded import EmbeddedBroker, PortInUse
from iotas.settings import Settings
from support import free_port


class Node:
    def __init__(self, settings: Settings, api: httpx.AsyncClient, uv: uvicorn.Server) -> None:
        self.settings, self.api, self.uv = settings, api, uv

    @property
    def mqtt(self) -> tuple[str, int]:
        assert self.settings.mqtt_port is not None
        return ("127.0.0.1", self.settings.mqtt_port)

    async def thing_with_secret(self, thing_id: str) -> str:
        created = await self.api.post("/api/v1/things", json={"id": thing_id, "kind": "sensor"})
        assert created.status_code == 201, created.text
        cred = await self.api.post(
            f"/api/v1/things/{thing_id}/credentials", json={"type": "password"}
        )
        assert cred.status_code == 201, cred.text
        secret: str = cred.json()["secret"]
        return secret


async def _serve(settings: Settings, token: str) -> AsyncIterator[Node]:
    uv = uvicorn.Server(
        uvicorn.Config(create_app(settings), port=settings.port, log_level="warning")
    )
    task = asyncio.create_task(uv.serve())
    while not uv.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{settings.port}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    ) as api:
        yield Node(settings, api, uv)
    uv.should_exit = True
    await task


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    token = "iotas_t_" + secrets.token_urlsafe(16)
    settings = Settings(
        data_dir=tmp_path / "d",
        port=free_port(),
        mqtt_port=free_port(),
        admin_token=token,
        log_level="warning",
    )
    async for n in _serve(settings, token):
        yield n


class Device:
    """A paho client on its own network thread; results are read back on the test's loop."""

    def __init__(
        self,
        address: tuple[str, int],
        thing_id: str,
        secret: str | None,
        *,
        client_id: str | None = None,
    ) -> None:
        self.thing_id = thing_id
        self.messages: list[tuple[str, bytes]] = []
        self.connack: Any = None
        self.suback: list[Any] = []
        self.connected = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id or thing_id)
        if secret is not None:
            self.client.username_pw_set(thing_id, secret)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: self.suback.extend(codes)
        self.client.connect(*address, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = reason
        self.connected.set()

    def wait_connack(self) -> Any:
        assert self.connected.wait(10), "no CONNACK"
        return self.connack

    def close(self, *, clean: bool = True) -> None:
        self.client.loop_stop()
        if clean:
            self.client.disconnect()
        else:
            sock = self.client.socket()
            if sock is not None:
                sock.close()


async def _eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_a_device_with_its_secret_reports_and_follows_desired(node: Node) -> None:
    secret = await node.thing_with_secret("acme:dev-1")
    device = await asyncio.to_thread(Device, node.mqtt, "acme:dev-1", secret)
    try:
        assert (await asyncio.to_thread(device.wait_connack)) == 0
        device.client.subscribe("things/acme:dev-1/desired", qos=1)
        info = device.client.publish("things/acme:dev-1/reported", b'{"fw": "1.0"}', qos=1)
        await asyncio.to_thread(info.wait_for_publish, 5)
        # The PUBACK came after the commit: the report is there at once, no waiting.
        twin = (await node.api.get("/api/v1/things/acme:dev-1/twin")).json()
        assert twin["reported"] == {"fw": "1.0"}

        thing = (await node.api.get("/api/v1/things/acme:dev-1")).json()
        assert thing["connected"] is True

        r = await node.api.patch("/api/v1/things/acme:dev-1/twin/desired", json={"sp": 5})
        version = r.json()["version"]

        async def got_desired() -> Any:
            return [orjson.loads(p) for t, p in device.messages if t.endswith("/desired") and p]

        desired = await _eventually(got_desired)
        assert desired[-1] == {"sp": 5, "$version": version}
    finally:
        device.close(clean=False)

    async def offline() -> bool:
        return not (await node.api.get("/api/v1/things/acme:dev-1")).json()["connected"]

    await _eventually(offline, timeout=15)
    types = [
        e["type"] for e in (await node.api.get("/api/v1/things/acme:dev-1/history")).json()["items"]
    ]
    assert "thing_connected" in types and types[-1] == "thing_disconnected"


async def test_wrong_secret_unknown_thing_and_borrowed_client_id_are_refused(node: Node) -> None:
    await node.thing_with_secret("acme:dev-2")
    for thing, secret, client_id in (
        ("acme:dev-2", "wrong", None),
        ("acme:nobody", "x", None),
        ("acme:dev-2", None, None),
    ):
        device = await asyncio.to_thread(Device, node.mqtt, thing, secret, client_id=client_id)
        try:
            assert (await asyncio.to_thread(device.wait_connack)) != 0
        finally:
            device.close(clean=False)
    stats = (await node.api.get("/api/v1/stats")).json()["ingest"]["rejected"]
    assert stats.get("auth_failed", 0) >= 3


async def test_a_device_cannot_touch_another_devices_topics(node: Node) -> None:
    secret_a = await node.thing_with_secret("acme:a")
    secret_b = await node.thing_with_secret("acme:b")
    a = await asyncio.to_thread(Device, node.mqtt, "acme:a", secret_a)
    b = await asyncio.to_thread(Device, node.mqtt, "acme:b", secret_b)
    try:
        await asyncio.to_thread(a.wait_connack)
        await asyncio.to_thread(b.wait_connack)
        b.client.subscribe("things/acme:b/desired", qos=1)
        a.client.subscribe("things/acme:b/#", qos=1)
        a.client.subscribe("things/+/desired", qos=1)
        a.client.subscribe("#", qos=1)
        await _eventually(lambda: _value(len(a.suback) >= 3))
        assert all(getattr(code, "is_failure", code == 0x80) for code in a.suback), a.suback
        info = a.client.publish("things/acme:b/reported", b'{"hijacked": true}', qos=1)
        await asyncio.to_thread(info.wait_for_publish, 5)
        await node.api.patch("/api/v1/things/acme:b/twin/desired", json={"x": 1})
        await _eventually(lambda: _value(any(t.endswith("/desired") for t, _ in b.messages)))
        assert not any("acme:b" in t for t, _ in a.messages)
        twin = (await node.api.get("/api/v1/things/acme:b/twin")).json()
        assert "hijacked" not in twin["reported"]
        stats = (await node.api.get("/api/v1/stats")).json()["ingest"]["rejected"]
        assert stats.get("acl_denied", 0) >= 4
    finally:
        a.close()
        b.close()


async def _value(v: Any) -> Any:
    return v


async def test_desired_state_survives_a_restart_of_the_embedded_broker(tmp_path: Path) -> None:
    token = "iotas_t_" + secrets.token_urlsafe(16)
    settings = Settings(
        data_dir=tmp_path / "d",
        port=free_port(),
        mqtt_port=free_port(),
        admin_token=token,
        log_level="warning",
    )
    async for n in _serve(settings, token):
        secret = await n.thing_with_secret("acme:dev-3")
        await n.api.patch("/api/v1/things/acme:dev-3/twin/desired", json={"sp": 9})
    async for n in _serve(settings, token):
        device = await asyncio.to_thread(Device, n.mqtt, "acme:dev-3", secret)
        try:
            await asyncio.to_thread(device.wait_connack)
            device.client.subscribe("things/acme:dev-3/desired", qos=1)

            async def got(messages: list[tuple[str, bytes]] = device.messages) -> Any:
                return [orjson.loads(p) for _, p in messages if p]

            assert (await _eventually(got))[-1] == {"sp": 9, "$version": 1}
        finally:
            device.close()


async def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = EmbeddedBroker(gate=None, port=port)  # type: ignore[arg-type]
        with pytest.raises(PortInUse, match=r"--mqtt-port.*--mqtt-url"):
            await broker.start()
