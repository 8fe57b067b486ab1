"""What the MQTT integration tests share: iotas in a subprocess on either transport, a paho
device, and waiting for a condition. Fixtures that use these live in conftest.py."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Literal

import httpx
import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from e2e.e2e_server import stop as stop_process
from e2e.e2e_server import wait_healthy
from support import LiveServer, free_port
from support import eventually as eventually  # the MQTT tests import it from here

MOSQUITTO = ("127.0.0.1", 1883)
IN_CI = os.environ.get("CI", "").lower() == "true"
Transport = Literal["embedded", "mosquitto"]
TRANSPORTS: tuple[Transport, ...] = ("embedded", "mosquitto")
# The tests' payload limit (IOTAS_MQTT_MAX_PAYLOAD), far below the default so that refusing a
# few kilobytes shows the setting is what decides.
MAX_PAYLOAD = 4096


def reachable(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=2):
            return True
    except OSError:
        return False


def require_mosquitto() -> None:
    """Skip without the Mosquitto at 127.0.0.1:1883; under CI=true that is a failure."""
    if not reachable(MOSQUITTO):
        if IN_CI:
            pytest.fail("CI requires Mosquitto at 127.0.0.1:1883")
        pytest.skip("Mosquitto is not running at 127.0.0.1:1883")


def ns() -> str:
    """A namespace of its own, so tests (and other users of a shared broker) never meet."""
    return "t" + secrets.token_hex(4)


# The topics of Things in namespaces `ns()` makes, and nothing else on a shared broker.
_TEST_TOPIC = re.compile(r"^things/t[0-9a-f]{8}:[^/]+/(presence|desired)$")


def forget_tests_retained(seconds: float = 2.0) -> int:
    """Clear every retained message that tests (this run's or an earlier one's) left on the
    shared Mosquitto under a test namespace: iotas' session there subscribes to every Thing's
    presence, and a few hundred leftovers plus a test's own stream overflow Mosquitto's
    default queue of 1,000 messages for a client, which then drops what the test sent.
    Returns how many were cleared."""
    if not reachable(MOSQUITTO):
        return 0
    found: set[str] = set()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="cleanup-" + ns())

    def on_message(_client: Any, _userdata: Any, message: Any) -> None:
        if message.retain and message.payload and _TEST_TOPIC.match(message.topic):
            found.add(message.topic)

    client.on_message = on_message
    client.connect(*MOSQUITTO, keepalive=30)
    client.loop_start()
    try:
        client.subscribe([("things/+/presence", 0), ("things/+/desired", 0)])
        time.sleep(seconds)  # retained messages come at once after the SUBACK; bounded
        infos = [client.publish(topic, b"", qos=1, retain=True) for topic in sorted(found)]
        for info in infos:
            info.wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()
    return len(found)


class Device:
    """A paho client (MQTT 3.1.1, which both brokers speak) on its own network thread, with
    `offline` as its last will. What it receives and which publishes the broker acknowledged
    are recorded for the test to read."""

    def __init__(
        self,
        address: tuple[str, int],
        thing_id: str,
        secret: str | None,
        *,
        client_id: str | None = None,
        clean_session: bool = True,
        will: bool = True,
        reconnect: bool = True,
    ) -> None:
        self.thing_id = thing_id
        self.messages: list[tuple[str, bytes]] = []
        self.suback: list[Any] = []
        self.connack: Any = None
        self.session_present: bool | None = None
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self._acked: set[int] = set()
        self._lock = threading.Lock()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or thing_id,
            clean_session=clean_session,
            protocol=paho.MQTTv311,
            reconnect_on_failure=reconnect,
        )
        if secret is not None:
            self.client.username_pw_set(thing_id, secret)
        if will:
            self.client.will_set(self.topic("presence"), "offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = lambda *_a: self.disconnected.set()
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: self.suback.extend(codes)
        self.client.connect(*address, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, _c: Any, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        self.connack = reason
        self.session_present = flags.session_present
        self.connected.set()

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def _on_publish(self, _c: Any, _u: Any, mid: int, _reason: Any, _p: Any) -> None:
        with self._lock:
            self._acked.add(mid)

    def wait_connack(self) -> Any:
        assert self.connected.wait(10), "no CONNACK"
        return self.connack

    def topic(self, channel: str) -> str:
        return f"things/{self.thing_id}/{channel}"

    def send(
        self, channel: str, payload: bytes | str, *, qos: int = 1, retain: bool = False
    ) -> paho.MQTTMessageInfo:
        return self.client.publish(self.topic(channel), payload, qos=qos, retain=retain)

    def acked(self) -> set[int]:
        """The message ids of QoS 1 publishes the broker acknowledged (PUBACK)."""
        with self._lock:
            return set(self._acked)

    def desired(self) -> list[Any]:
        """Every non-empty desired state received, oldest first."""
        with self._lock:
            got = list(self.messages)
        return [orjson.loads(p) for t, p in got if t == self.topic("desired") and p]

    def close(self, *, clean: bool = True) -> None:
        """A clean DISCONNECT, or (clean=False) the socket just closed: the last will fires."""
        if clean:
            # Disconnect first: it wakes the network thread, which loop_stop() then joins.
            self.client.disconnect()
            self.client.loop_stop()
        else:
            self.client.loop_stop()
            sock = self.client.socket()
            if sock is not None:
                sock.close()


def client_of_mosquitto(server: LiveServer, config_dir: Path, workdir: Path) -> Iotas:
    """iotas (not started) as a client of the Mosquitto that `iotas broker-config` configured
    in `config_dir`, with the service account it wrote there, as docs/deployment.md says
    (`--mqtt-url "$(cat iotas-mqtt-url)"`); on `server`'s database, answering its token."""
    workdir.mkdir(parents=True, exist_ok=True)
    node = Iotas("embedded", workdir)
    node.settings.pop("mqtt_port")
    node.settings.pop("mqtts_port")
    node.settings["mqtt_url"] = (config_dir / "iotas-mqtt-url").read_text().strip()
    node.settings["database_url"] = server.settings.database_url
    node.settings["admin_token"] = node.token = server.token
    return node


_SERVE = (
    "import json, sys; from pathlib import Path; from iotas.server import serve; "
    "from iotas.settings import Settings; s = json.loads(sys.argv[1]); "
    "serve(Settings(**{**s, 'data_dir': Path(s['data_dir'])}))"
)


class Iotas:
    """iotas in a subprocess (so a test can SIGKILL it), on SQLite in `workdir` (or the
    `database_url` set in its settings), with devices on the embedded broker (a free port; a
    device logs in with its Thing id and a secret) or on the Mosquitto at 127.0.0.1:1883
    (devices anonymous; iotas its client under an id of its own, with a short session expiry
    so no stale session of a test lingers there)."""

    def __init__(self, transport: Transport, workdir: Path) -> None:
        self.transport = transport
        self.port = free_port()
        self.token = "iotas_t_" + secrets.token_urlsafe(16)
        self.log_path = workdir / "iotas.log"
        self.things: list[str] = []
        self.settings: dict[str, Any] = {
            "data_dir": str(workdir / "data"),
            "port": self.port,
            "admin_token": self.token,
            "log_level": "warning",
            "mqtt_max_payload": MAX_PAYLOAD,
            # Tests refuse logins on purpose, all from 127.0.0.1: no per-source limit here
            # (test_login_limit.py tests it).
            "auth_failure_burst": 1e9,
        }
        if transport == "embedded":
            self.mqtt = ("127.0.0.1", free_port())
            self.settings["mqtt_port"] = self.mqtt[1]
            self.mqtts = ("127.0.0.1", free_port())
            self.settings["mqtts_port"] = self.mqtts[1]
        else:
            self.mqtt = MOSQUITTO
            self.settings["mqtt_url"] = f"mqtt://{MOSQUITTO[0]}:{MOSQUITTO[1]}"
            self.settings["mqtt_client_id"] = "iotas-test-" + secrets.token_hex(4)
            self.settings["mqtt_session_expiry"] = 120
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def shared_broker(self) -> bool:
        """Whether others may publish where this iotas listens (so counters are lower bounds)."""
        return self.transport == "mosquitto"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _SERVE, json.dumps(self.settings)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_healthy(self.url, self.proc, self.log_path)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, no DISCONNECT."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )

    async def register(self, api: httpx.AsyncClient, thing_id: str) -> str | None:
        """Create the Thing; on the embedded broker also a secret for it (returned)."""
        created = await api.post("/api/v1/things", json={"id": thing_id, "kind": "sensor"})
        assert created.status_code == 201, created.text
        self.things.append(thing_id)
        if self.transport != "embedded":
            return None
        cred = await api.post(f"/api/v1/things/{thing_id}/credentials", json={"type": "password"})
        assert cred.status_code == 201, cred.text
        secret: str = cred.json()["secret"]
        return secret

    def device(self, thing_id: str, secret: str | None, **options: Any) -> Device:
        """A device connected (CONNACK accepted) to this iotas' broker."""
        device = Device(self.mqtt, thing_id, secret, **options)
        if device.wait_connack() != 0:
            device.close(clean=False)
            raise AssertionError(f"{thing_id} was refused: {device.connack}")
        return device

    async def rejected(self, api: httpx.AsyncClient) -> dict[str, int]:
        stats = (await api.get("/api/v1/stats")).json()["ingest"]["rejected"]
        return dict(stats)

    def forget_retained(self) -> None:
        """Clear the retained messages left for this test's Things on the shared broker."""
        if not self.shared_broker or not self.things:
            return
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id="cleanup-" + ns())
        client.connect(*MOSQUITTO, keepalive=30)
        client.loop_start()
        try:
            for thing_id in self.things:
                for channel in ("desired", "presence"):
                    info = client.publish(f"things/{thing_id}/{channel}", b"", qos=1, retain=True)
                    info.wait_for_publish(5)
        finally:
            client.disconnect()
            client.loop_stop()
