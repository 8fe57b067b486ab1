"""MQTT 5 clients on the embedded broker (amqtt, MQTT 3.1.1 only) are refused at once, in a
CONNACK they understand, and the connection is closed: never a hang. paho-mqtt v5,
`mosquitto_pub -V mqttv5` and raw sockets play the clients."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from integration.mqtt.mqtt_support import IN_CI, Iotas, eventually

WAIT = 10.0


def _connect_packet(protocol: bytes, level: int, client_id: bytes, properties: bool) -> bytes:
    variable = len(protocol).to_bytes(2, "big") + protocol + bytes([level, 0x02, 0x00, 0x3C])
    if properties:
        variable += b"\x00"  # MQTT 5: no properties
    body = variable + len(client_id).to_bytes(2, "big") + client_id
    assert len(body) < 128
    return bytes([0x10, len(body)]) + body


def _exchange(address: tuple[str, int], packet: bytes) -> tuple[bytes, bytes]:
    """Send `packet`; return what the broker answered and what came after it (b"" once the
    broker has closed the connection). A broker that answers nothing fails on the timeout."""
    with socket.create_connection(address, timeout=WAIT) as sock:
        sock.sendall(packet)
        answer = sock.recv(64)
        rest = sock.recv(64)
        return answer, rest


@pytest.mark.parametrize(
    ("protocol", "level", "expected"),
    [
        (b"MQTT", 5, bytes([0x20, 0x03, 0x00, 0x84, 0x00])),  # v5 CONNACK, 0x84
        (b"MQIsdp", 3, bytes([0x20, 0x02, 0x00, 0x01])),  # 3.1: return code 0x01
        (b"MQTT", 6, bytes([0x20, 0x02, 0x00, 0x01])),
    ],
)
async def test_a_raw_connect_of_another_protocol_level_is_refused_and_closed(
    embedded: Iotas, protocol: bytes, level: int, expected: bytes
) -> None:
    async with embedded.client() as api:
        before = (await embedded.rejected(api)).get("unsupported_protocol", 0)
        packet = _connect_packet(protocol, level, b"raw-client", properties=level == 5)
        answer, rest = await asyncio.to_thread(_exchange, embedded.mqtt, packet)
        assert (answer, rest) == (expected, b"")
        after = (await embedded.rejected(api)).get("unsupported_protocol", 0)
        assert after == before + 1


async def test_paho_on_mqtt5_learns_the_version_is_unsupported(embedded: Iotas) -> None:
    async with embedded.client() as api:
        secret = await embedded.register(api, "acme:v5-paho")
    answered = threading.Event()
    closed = threading.Event()
    reason: list[Any] = []
    client = paho.Client(
        CallbackAPIVersion.VERSION2, client_id="acme:v5-paho", protocol=paho.MQTTv5
    )
    client.username_pw_set("acme:v5-paho", secret)

    def on_connect(_c: Any, _u: Any, _f: Any, code: Any, _p: Any) -> None:
        reason.append(code)
        answered.set()

    client.on_connect = on_connect
    client.on_disconnect = lambda *_a: closed.set()
    client.connect(*embedded.mqtt, keepalive=30)
    client.loop_start()
    try:
        assert await asyncio.to_thread(answered.wait, WAIT), "no CONNACK"
        assert reason[0].value == 0x84 and reason[0].is_failure, reason
        await eventually(closed.is_set, timeout=WAIT)
    finally:
        client.loop_stop()


async def test_mosquitto_pub_on_mqtt5_is_refused_at_once(embedded: Iotas) -> None:
    if shutil.which("mosquitto_pub") is None:
        if IN_CI:
            pytest.fail("CI requires mosquitto_pub")
        pytest.skip("mosquitto_pub is not installed")
    async with embedded.client() as api:
        secret = await embedded.register(api, "acme:v5-cli")
    assert secret is not None  # the embedded broker gives each Thing a password
    host, port = embedded.mqtt
    command = [
        *("mosquitto_pub", "-V", "mqttv5", "-h", host, "-p", str(port)),
        *("-i", "acme:v5-cli", "-u", "acme:v5-cli", "-P", secret),
        *("-t", "things/acme:v5-cli/telemetry", "-m", '{"t": 1}', "-q", "1"),
    ]

    def publish() -> subprocess.CompletedProcess[bytes]:
        # A hang fails here (TimeoutExpired).
        return subprocess.run(command, capture_output=True, timeout=WAIT * 2, check=False)

    result = await asyncio.to_thread(publish)
    assert result.returncode != 0
    assert b"protocol version" in (result.stdout + result.stderr).lower(), result
