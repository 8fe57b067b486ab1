"""On a Mosquitto configured by `iotas broker-config`, a quarantine (or the revocation of a
Thing's last credential) drops the device's session at once and refuses its reconnects:
iotas commands the broker's dynamic security plugin over MQTT, with no new configuration and
no restart. iotas runs as a real process, a client of that Mosquitto with its service
account."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from integration.mqtt.mqtt_support import client_of_mosquitto, eventually
from integration.mqtt.test_mosquitto_config import Broker, attempt
from integration.mqtt.test_mosquitto_tls import (
    TlsMqtt,
    _generate,
    _save,
    _wait_listening,
    out_dir,
)
from support import LiveServer, free_port

pytestmark = pytest.mark.mosquitto

__all__ = ["out_dir"]  # the fixture, used by name

P, Q, R = "acme:kick-p", "acme:kick-q", "acme:kick-r"
BOUND_S = 5.0


@pytest.fixture
def database_url(pg_database: str) -> str:
    # Two iotas processes on one database (the test's server, which writes the broker
    # configuration, and the node connected to the broker): PostgreSQL, not a SQLite file.
    return pg_database


class Watched:
    """A password device on the plain listener that notes when its connection is cut."""

    def __init__(self, port: int, thing_id: str, secret: str) -> None:
        self.up = threading.Event()
        self.down = threading.Event()
        self.code: Any = None
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=thing_id)
        self.client.username_pw_set(thing_id, secret)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.down.set()
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.code = reason
        self.up.set()

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def node_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "node"
    path.mkdir()
    yield path


async def test_quarantine_cuts_the_device_off_at_mosquitto(
    server: LiveServer, out_dir: Path, node_dir: Path, tmp_path: Path
) -> None:
    c = server.client
    secrets = {}
    for thing_id in (P, Q):
        await c.post("/api/v1/things", json={"id": thing_id, "kind": "pump"})
        made = await c.post(f"/api/v1/things/{thing_id}/credentials", json={"type": "password"})
        secrets[thing_id] = made.json()["secret"]
    await c.post(f"/api/v1/things/{Q}/credentials", json={"type": "x509"})
    await c.post("/api/v1/things", json={"id": R, "kind": "pump"})
    cert = (await c.post(f"/api/v1/things/{R}/credentials", json={"type": "x509"})).json()
    r_files = _save(tmp_path, "r", cert)
    port, tls_port = free_port(), free_port()
    await _generate(server, out_dir, port, tls_port)
    broker = Broker(out_dir / "mosquitto.conf", port)
    node = client_of_mosquitto(server, out_dir, node_dir)
    try:
        await asyncio.to_thread(broker.start)
        await asyncio.to_thread(_wait_listening, tls_port)
        await asyncio.to_thread(node.start)
        async with node.client() as api:
            p = await asyncio.to_thread(Watched, port, P, secrets[P])
            q = await asyncio.to_thread(Watched, port, Q, secrets[Q])
            try:
                assert p.up.wait(10) and p.code == 0 and q.up.wait(10) and q.code == 0
                # Revoking one of Q's two credentials drops its session, but it may come back
                # with the other.
                started = time.monotonic()
                listed = (await api.get(f"/api/v1/things/{Q}/credentials")).json()["items"]
                x509_id = next(i["id"] for i in listed if i["type"] == "x509")
                assert (
                    await api.delete(f"/api/v1/things/{Q}/credentials/{x509_id}")
                ).status_code == 204
                await eventually(q.down.is_set, timeout=BOUND_S)
                assert await asyncio.to_thread(attempt, port, Q, secrets[Q])

                # Quarantine P: out within the bound, and refused from then on.
                started = time.monotonic()
                quarantined = await api.post(f"/api/v1/things/{P}/quarantine", json={"reason": "x"})
                assert quarantined.status_code == 200, quarantined.text
                await eventually(p.down.is_set, timeout=BOUND_S)
                assert not await asyncio.to_thread(attempt, port, P, secrets[P])
                assert time.monotonic() - started < BOUND_S

                # A device on the TLS listener with its certificate: the same.
                ca = out_dir / "ca.crt"
                r = TlsMqtt(tls_port, R, ca, r_files)
                r_down = threading.Event()
                r.client.on_disconnect = lambda *_a: r_down.set()
                assert await asyncio.to_thread(r.connect)
                started = time.monotonic()
                quarantined = await api.post(f"/api/v1/things/{R}/quarantine", json={"reason": "x"})
                assert quarantined.status_code == 200, quarantined.text
                await eventually(r_down.is_set, timeout=BOUND_S)
                r.client.loop_stop()
                # Mosquitto does not ask the plugin about a certificate login, so the session
                # is accepted, but without a role it may not publish or subscribe to anything.
                again = TlsMqtt(tls_port, R, ca, r_files)
                if await asyncio.to_thread(again.connect):
                    try:
                        assert not await asyncio.to_thread(again.subscribe, f"things/{R}/#")
                        again.publish(f"things/{R}/telemetry", b'{"t": 1}')
                    finally:
                        again.close()
                latest = (await api.get(f"/api/v1/things/{R}/telemetry/latest")).json()
                assert latest == {}
                assert time.monotonic() - started < BOUND_S
            finally:
                p.stop()
                q.stop()
    finally:
        node.stop()
        await asyncio.to_thread(broker.stop)
