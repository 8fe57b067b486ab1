"""The cross-device test of test_embedded_crowd.py on Mosquitto configured by `iotas
broker-config mosquitto`: iotas (a real process, the broker's client with its service account)
publishes every device's desired state retained, 500 devices in two namespaces connect at the
same moment, and no device receives a topic that is not its own."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.mqtt.crowd import (
    connect_all,
    disconnect_all,
    register_fleet,
    set_desired,
    wait_own_desired,
)
from integration.mqtt.mqtt_support import client_of_mosquitto, ns
from integration.mqtt.test_mosquitto_config import Broker, _generate, out_dir
from support import LiveServer, free_port

pytestmark = pytest.mark.mosquitto

__all__ = ["out_dir"]  # the fixture, used by name

PER_NAMESPACE = 250
SETTLE = 120.0


@pytest.fixture
def database_url(pg_database: str) -> str:
    # Two iotas processes on one database (the test's server, which writes the broker
    # configuration, and the node connected to the broker): PostgreSQL, not a SQLite file.
    return pg_database


@pytest.fixture
def node_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "node"
    path.mkdir()
    yield path


async def test_no_device_receives_another_devices_topics_on_mosquitto(
    server: LiveServer, out_dir: Path, node_dir: Path
) -> None:
    fleet = await register_fleet(
        server.client, [ns(), ns()], PER_NAMESPACE, secrets=True, desired=False
    )
    port = free_port()
    report = await _generate(server, out_dir, port)
    assert report["things"] == len(fleet)
    broker = Broker(out_dir / "mosquitto.conf", port)
    node = client_of_mosquitto(server, out_dir, node_dir)
    try:
        await asyncio.to_thread(broker.start)
        await asyncio.to_thread(node.start)
        async with node.client() as api:
            # Set through the node, which publishes each desired state retained on Mosquitto.
            await set_desired(api, fleet)
        devices = await connect_all(("127.0.0.1", port), fleet)
        try:
            await wait_own_desired(devices, SETTLE)
            leaks = {d.thing_id: d.foreign() for d in devices if d.foreign()}
            assert not leaks, f"{len(leaks)} devices received others' topics: {leaks}"
            assert all(d.client.is_connected and not d.drops for d in devices)
        finally:
            await disconnect_all(devices)
    finally:
        node.stop()
        await asyncio.to_thread(broker.stop)
