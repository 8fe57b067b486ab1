"""The fleet simulator and `iotas simulate` against the real Mosquitto at 127.0.0.1:1883
(without provisioning: that broker lets anyone in). A paho-mqtt client observes."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from integration.mqtt.mqtt_support import MOSQUITTO, eventually
from iotas.sim import Fleet, plan_fleet
from support import free_port

pytestmark = pytest.mark.usefixtures("mosquitto")


def _client(prefix: str) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{prefix}-{secrets.token_hex(4)}")
    client.connect(*MOSQUITTO, keepalive=30)
    return client


class Watch:
    """Everything published under the given Things' topics, as paho sees it. (One filter per
    Thing: `things/#` would first bring every retained message on the shared broker.)"""

    def __init__(self, thing_ids: list[str]) -> None:
        self.seen: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = _client("watch")
        self.client.on_message = self._record
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.subscribe([(f"things/{thing_id}/#", 1) for thing_id in thing_ids])
        self.client.loop_start()
        assert subscribed.wait(5)

    def _record(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.seen.append((message.topic, bytes(message.payload)))

    def on(self, thing_id: str, channel: str) -> list[bytes]:
        with self._lock:
            return [p for t, p in self.seen if t == f"things/{thing_id}/{channel}"]

    def count(self, channel: str) -> int:
        with self._lock:
            return sum(t.endswith(f"/{channel}") for t, _ in self.seen)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _clear_retained(thing_ids: list[str]) -> None:
    client = _client("clear")
    client.loop_start()
    try:
        for thing_id in thing_ids:
            for channel in ("presence", "desired"):
                client.publish(f"things/{thing_id}/{channel}", b"", qos=1, retain=True)
        client.publish("iotas-test/done", b"", qos=1).wait_for_publish(5)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def namespace() -> Iterator[str]:
    value = f"sim{secrets.token_hex(4)}"
    yield value
    _clear_retained([t.id for t in plan_fleet(20, namespace=value)])


async def test_a_fleet_sends_at_its_rate_follows_desired_and_survives_drops(
    namespace: str,
) -> None:
    fleet = Fleet(
        None,
        devices=20,
        rate=40.0,
        namespace=namespace,
        seed=3,
        transmit_only_share=0.25,
        flaky_share=0.25,
        mean_uptime=1.0,
        connect_rate=200.0,
    )
    pump = next(t for t in fleet.things if t.kind == "pump" and not t.transmit_only)
    mute = next(t for t in fleet.things if t.transmit_only)
    publisher = _client("desired")
    publisher.loop_start()
    for thing in (pump, mute):
        publisher.publish(
            f"things/{thing.id}/desired", b'{"speed": 2000, "$version": 2}', qos=1, retain=True
        ).wait_for_publish(5)
    publisher.disconnect()
    publisher.loop_stop()

    watch = Watch([t.id for t in fleet.things])
    try:
        stats = await asyncio.wait_for(fleet.run(duration=3.0), 15)
        # The last messages are still on their way to the watcher.
        await eventually(lambda: watch.count("telemetry") >= 90, timeout=10)
    finally:
        watch.close()

    telemetry = watch.count("telemetry")
    assert 90 <= telemetry <= 130, telemetry  # 40/s for 3 s (flaky resends may add a few)
    assert stats.started == stats.devices == 20 and stats.connected == 0
    assert stats.acked == stats.sent - stats.resent and stats.queued == 0
    assert stats.drops >= 1 and stats.reconnects >= stats.drops - 5
    assert stats.desired_applied >= 1
    reported = [orjson.loads(p) for p in watch.on(pump.id, "reported")]
    assert {"speed": 2000} in reported  # applied and reported back, without "$version"
    assert {"firmware": "2.0.4", "model": pump.attributes["model"]} in reported  # boot report
    assert watch.on(mute.id, "reported") == []  # transmit-only: never listens, never reports
    assert watch.on(mute.id, "telemetry")
    sample = orjson.loads(watch.on(pump.id, "telemetry")[0])
    assert set(sample) == {"temp", "pressure", "speed"}


def _simulate(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTAS_")}
    return subprocess.run(
        [sys.executable, "-m", "iotas", "simulate", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def test_the_cli_prints_json_stats_for_scripts(namespace: str) -> None:
    done = _simulate(
        "--no-provision", "--devices", "5", "--rate", "20", "--duration", "1.5",
        "--namespace", namespace, "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    stats = orjson.loads(done.stdout)
    assert stats["devices"] == 5 and stats["connects"] >= 5
    assert 20 <= stats["acked"] <= 50
    assert stats["dropped"] == 0


def test_the_cli_exits_6_when_no_device_can_connect() -> None:
    done = _simulate(
        "--no-provision", "--devices", "2", "--rate", "5", "--duration", "1",
        "--mqtt-url", f"mqtt://127.0.0.1:{free_port()}", "--json",
    )  # fmt: skip
    assert done.returncode == 6, done.stderr
    assert "no device could connect" in done.stderr


def test_the_cli_rejects_a_bad_broker_url() -> None:
    done = _simulate("--devices", "1", "--rate", "1", "--mqtt-url", "http://x")
    assert done.returncode == 2
    assert "not an MQTT URL" in done.stderr
