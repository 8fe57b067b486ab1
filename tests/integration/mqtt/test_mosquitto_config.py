"""`iotas broker-config mosquitto` against a real Mosquitto started from the files it wrote.

A live iotas server holds the credentials; the CLI (a real subprocess, over HTTP) writes the
configuration; Mosquitto runs on a free loopback port; paho-mqtt plays the devices and the
iotas service user.
"""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from integration.mqtt.mqtt_support import IN_CI
from support import LiveServer, free_port

pytestmark = pytest.mark.mosquitto

A, B = "acme:a", "acme:b"
WAIT = 5.0


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    # The broker configuration does not depend on the database: SQLite alone keeps this short.
    return f"sqlite:///{tmp_path / 'iotas.db'}"


@pytest.fixture
def out_dir() -> Iterator[Path]:
    if shutil.which("mosquitto") is None:
        if IN_CI:
            pytest.fail("CI requires the mosquitto binary")
        pytest.skip("mosquitto is not installed")
    # Not under pytest's tmp_path: Mosquitto started as root reads the plugin file after
    # dropping to its own user, which must be able to reach the directory.
    path = Path(tempfile.mkdtemp(prefix="iotas-mosquitto-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Broker:
    """A Mosquitto process on the generated configuration."""

    def __init__(self, conf: Path, port: int) -> None:
        self.conf, self.port = conf, port
        self.log = conf.with_name("mosquitto.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                ["mosquitto", "-c", str(self.conf), "-v"], stdout=log, stderr=log
            )
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError("mosquitto did not start listening")
        assert "Error" not in self.log.read_text(), self.log.read_text()[-2000:]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(WAIT)
        self.proc = None


class Mqtt:
    """A paho client whose calls wait (bounded) for the broker's answer."""

    def __init__(self, port: int, username: str, password: str, client_id: str) -> None:
        self.port = port
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        self.client.username_pw_set(username, password)
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack: queue.Queue[Any] = queue.Queue()
        self.subacks: dict[int, queue.Queue[list[Any]]] = {}
        self.client.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda c, u, mid, codes, p: self._suback(mid).put(codes)

    def _suback(self, mid: int) -> queue.Queue[list[Any]]:
        return self.subacks.setdefault(mid, queue.Queue())

    def connect(self) -> bool:
        """True when accepted; False when refused (the client is stopped then)."""
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        code = self.connack.get(timeout=WAIT)
        if code.is_failure:
            self.close()
            return False
        return True

    def subscribe(self, topic: str) -> bool:
        """True when granted; False when the broker refused it (SUBACK 0x80)."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None, "paho refused the SUBSCRIBE"
        [code] = self._suback(mid).get(timeout=WAIT)
        return not code.is_failure

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(WAIT)

    def next_message(self) -> tuple[str, bytes]:
        return self.messages.get(timeout=WAIT)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def attempt(port: int, username: str, password: str, client_id: str | None = None) -> bool:
    client = Mqtt(port, username, password, client_id or username)
    accepted = client.connect()
    if accepted:
        client.close()
    return accepted


async def _cli(server: LiveServer, *args: str) -> dict[str, Any]:
    # A real `iotas` process; the server answers it from this event loop, so wait in a thread.
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "iotas", "--url", server.url, "--token", server.token, *args],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr.decode()
    report: dict[str, Any] = orjson.loads(result.stdout)
    return report


async def _generate(server: LiveServer, out: Path, port: int) -> dict[str, Any]:
    owner = ["--owner", "mosquitto"] if os.geteuid() == 0 else []
    return await _cli(
        server,
        "broker-config",
        "mosquitto",
        "--out",
        str(out),
        "--port",
        str(port),
        "--json",
        *owner,
    )


def _check_isolation(port: int, secrets: dict[str, str], service: str) -> None:
    iotas = Mqtt(port, "iotas", service, "iotas-test")
    a = Mqtt(port, A, secrets[A], A)
    b = Mqtt(port, B, secrets[B], B)
    try:
        assert iotas.connect() and a.connect() and b.connect()
        assert iotas.subscribe("things/#")
        assert a.subscribe(f"things/{A}/#") and b.subscribe(f"things/{B}/#")
        assert not a.subscribe(f"things/{B}/#")
        assert not a.subscribe("things/#")
        assert not a.subscribe("things/+/telemetry")

        # A's own topics work both ways.
        a.publish(f"things/{A}/telemetry", b"a-own")
        assert iotas.next_message() == (f"things/{A}/telemetry", b"a-own")
        assert a.next_message() == (f"things/{A}/telemetry", b"a-own")  # its own echo
        iotas.publish(f"things/{A}/desired", b"to-a")
        assert a.next_message() == (f"things/{A}/desired", b"to-a")
        assert iotas.next_message() == (f"things/{A}/desired", b"to-a")  # its own echo

        # A cannot publish on B's topics: what the iotas user sees next is A's marker, which
        # A sent after the forbidden message on the same connection.
        a.publish(f"things/{B}/telemetry", b"forged")
        a.publish(f"things/{B}/desired", b"forged")
        a.publish(f"things/{A}/marker", b"1")
        assert iotas.next_message() == (f"things/{A}/marker", b"1")
        assert a.next_message() == (f"things/{A}/marker", b"1")

        # A receives nothing of B's: B's message and iotas' message to B are routed before
        # the marker that A does receive.
        b.publish(f"things/{B}/telemetry", b"b-own")
        assert iotas.next_message() == (f"things/{B}/telemetry", b"b-own")
        assert b.next_message() == (f"things/{B}/telemetry", b"b-own")
        iotas.publish(f"things/{B}/desired", b"to-b")
        assert b.next_message() == (f"things/{B}/desired", b"to-b")
        assert iotas.next_message() == (f"things/{B}/desired", b"to-b")
        iotas.publish(f"things/{A}/marker", b"2")
        assert a.next_message() == (f"things/{A}/marker", b"2")
        assert a.messages.empty()
    finally:
        for client in (iotas, a, b):
            client.close()

    # iotas' workers share the load through a shared subscription.
    worker = Mqtt(port, "iotas", service, "iotas-worker-1")
    try:
        assert worker.connect() and worker.subscribe("$share/iotas/things/#")
        assert not worker.subscribe("$share/other/things/#")
        publisher = Mqtt(port, B, secrets[B], B)
        assert publisher.connect()
        publisher.publish(f"things/{B}/telemetry", b"shared")
        publisher.close()
        assert worker.next_message() == (f"things/{B}/telemetry", b"shared")
    finally:
        worker.close()


def _check_actions(port: int, secrets: dict[str, str], service: str) -> None:
    """The actions convention under the generated roles: a device subscribes to its own
    invocations and answers them; another's it can neither receive nor answer."""
    iotas = Mqtt(port, "iotas", service, "iotas-test")
    a = Mqtt(port, A, secrets[A], A)
    b = Mqtt(port, B, secrets[B], B)
    try:
        assert iotas.connect() and a.connect() and b.connect()
        assert iotas.subscribe("things/+/actions/+/+/result")
        assert a.subscribe(f"things/{A}/actions/+/+") and b.subscribe(f"things/{B}/actions/+/+")
        assert not a.subscribe(f"things/{B}/actions/+/+")
        assert not a.subscribe("things/+/actions/#")

        iotas.publish(f"things/{B}/actions/reboot/inv-1", b"{}")
        assert b.next_message() == (f"things/{B}/actions/reboot/inv-1", b"{}")
        # A answers B's invocation: refused; its own answer, sent after, is what iotas gets.
        a.publish(f"things/{B}/actions/reboot/inv-1/result", b'{"status": "failed"}')
        a.publish(f"things/{A}/actions/ping/inv-2/result", b'{"status": "succeeded"}')
        assert iotas.next_message() == (
            f"things/{A}/actions/ping/inv-2/result",
            b'{"status": "succeeded"}',
        )
        b.publish(f"things/{B}/actions/reboot/inv-1/result", b'{"status": "succeeded"}')
        assert iotas.next_message()[0] == f"things/{B}/actions/reboot/inv-1/result"
        # A got nothing of B's: iotas' next invocation to A is the first thing it receives.
        iotas.publish(f"things/{A}/actions/ping/inv-3", b"null")
        assert a.next_message() == (f"things/{A}/actions/ping/inv-3", b"null")
        assert a.messages.empty()
    finally:
        for client in (iotas, a, b):
            client.close()


async def test_generated_config_authenticates_and_isolates_things(
    server: LiveServer, out_dir: Path
) -> None:
    c = server.client
    secrets: dict[str, str] = {}
    ids: dict[str, str] = {}
    for thing_id in (A, B):
        await c.post("/api/v1/things", json={"id": thing_id, "kind": "pump"})
        created = (
            await c.post(f"/api/v1/things/{thing_id}/credentials", json={"type": "password"})
        ).json()
        secrets[thing_id], ids[thing_id] = created["secret"], created["id"]

    port = free_port()
    report = await _generate(server, out_dir, port)
    assert report["things"] == 2 and report["skipped"] == 0
    for name in ("dynamic-security.json", "iotas.secret", "iotas-mqtt-url"):
        assert stat.S_IMODE((out_dir / name).stat().st_mode) == 0o600, name
    service = (out_dir / "iotas.secret").read_text().strip()
    assert (out_dir / "iotas-mqtt-url").read_text().strip() == (
        f"mqtt://iotas:{service}@127.0.0.1:{port}"
    )
    conf = (out_dir / "mosquitto.conf").read_text()
    assert f"listener {port} 127.0.0.1" in conf and "allow_anonymous false" in conf
    dynsec = (out_dir / "dynamic-security.json").read_text()
    assert secrets[A] not in dynsec and service not in dynsec

    broker = Broker(out_dir / "mosquitto.conf", port)
    try:
        await asyncio.to_thread(broker.start)
        assert await asyncio.to_thread(attempt, port, A, secrets[A])
        assert not await asyncio.to_thread(attempt, port, A, secrets[B])
        assert not await asyncio.to_thread(attempt, port, A, secrets[A] + "x")
        assert not await asyncio.to_thread(attempt, port, "acme:nobody", secrets[A])
        # The client id is bound to the Thing: A cannot take over B's session.
        assert not await asyncio.to_thread(attempt, port, A, secrets[A], B)
        await asyncio.to_thread(_check_isolation, port, secrets, service)
        await asyncio.to_thread(_check_actions, port, secrets, service)

        # Revoke A's credential, regenerate, restart: A is refused, B and iotas are not.
        assert (await c.delete(f"/api/v1/things/{A}/credentials/{ids[A]}")).status_code == 204
        report = await _generate(server, out_dir, port)
        assert report["things"] == 1
        assert (out_dir / "iotas.secret").read_text().strip() == service  # kept
        await asyncio.to_thread(broker.stop)
        await asyncio.to_thread(broker.start)
        assert not await asyncio.to_thread(attempt, port, A, secrets[A])
        assert await asyncio.to_thread(attempt, port, B, secrets[B])
        assert await asyncio.to_thread(attempt, port, "iotas", service, "iotas-1")
    finally:
        await asyncio.to_thread(broker.stop)


def test_mosquitto_refuses_colons_in_password_files(out_dir: Path) -> None:
    """Why the configuration uses the dynamic security plugin (docs/deployment.md)."""
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd is not installed")
    result = subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(out_dir / "passwd"), A, "secret"],
        capture_output=True,
        timeout=10,
    )
    assert result.returncode != 0 and b"':'" in result.stderr + result.stdout
