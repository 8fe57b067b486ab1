"""The device SDK against real Mosquitto: the shared one at 127.0.0.1:1883 (anonymous), and
private instances on free ports where a test must restart, lock or encrypt the broker.

paho-mqtt is the observer, so what we check is what any other MQTT client sees. Every test
uses its own random Thing ids and clears the retained messages it left.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from integration.mqtt.mqtt_support import IN_CI, MOSQUITTO
from integration.mqtt.mqtt_support import reachable as _reachable
from iotas.sdk import ActionError, Device
from iotas.sdk.device import ConnectRefused, ConnectTimeout, MessageDropped
from support import free_port

WAIT = 5.0  # upper bound of any single wait in these tests


class Backoff(TypedDict):
    backoff_initial: float
    backoff_max: float


FAST: Backoff = {"backoff_initial": 0.1, "backoff_max": 0.4}  # quick reconnects for tests

pytestmark = pytest.mark.usefixtures("mosquitto")


# -- observing with paho ---------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return orjson.loads(self.payload)


class Observer:
    """A paho-mqtt client subscribed to one filter, recording everything it receives."""

    def __init__(self, topic: str, address: tuple[str, int] = MOSQUITTO) -> None:
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"observer-{secrets.token_hex(4)}"
        )
        self.client.on_message = self._record
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(*address, keepalive=30)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        if not subscribed.wait(WAIT):
            self.close()
            raise RuntimeError("the observer's subscription was not acknowledged")

    def _record(self, _client: Any, _userdata: Any, message: paho.MQTTMessage) -> None:
        with self._lock:
            self.seen.append(Seen(message.topic, bytes(message.payload), bool(message.retain)))

    def on(self, topic: str) -> list[Seen]:
        with self._lock:
            return [m for m in self.seen if m.topic == topic]

    async def wait_for(self, topic: str, count: int = 1, timeout: float = WAIT) -> list[Seen]:
        """The first `count` messages on `topic`, waiting for them at most `timeout` s."""
        async with asyncio.timeout(timeout):
            while len(found := self.on(topic)) < count:
                await asyncio.sleep(0.01)
        return found[:count]

    def close(self) -> None:
        # Disconnect first: it wakes paho's network thread, which loop_stop() then joins at
        # once instead of after its one-second select timeout.
        self.client.disconnect()
        self.client.loop_stop()


def retained(topic: str, address: tuple[str, int] = MOSQUITTO) -> bytes | None:
    """The retained message on `topic`, as a new subscriber gets it (None if there is none)."""
    got: list[paho.MQTTMessage] = []
    arrived = threading.Event()
    subscribed = threading.Event()

    def on_message(_c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        got.append(message)
        arrived.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{secrets.token_hex(4)}")
    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(*address, keepalive=30)
    client.subscribe(topic, qos=1)
    client.loop_start()
    try:
        # A retained message is sent right after the SUBACK; give it a moment beyond that.
        subscribed.wait(WAIT)
        arrived.wait(0.5)
    finally:
        client.disconnect()
        client.loop_stop()
    return bytes(got[0].payload) if got and got[0].retain else None


def publish(topic: str, payload: bytes, *, retain: bool = False) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{secrets.token_hex(4)}")
    client.connect(*MOSQUITTO, keepalive=30)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(WAIT)
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def thing_id() -> Iterator[str]:
    """A fresh Thing id; the retained messages left under it are cleared afterwards."""
    value = f"t{secrets.token_hex(5)}:device-1"
    yield value
    for channel in ("presence", "desired"):
        publish(f"things/{value}/{channel}", b"", retain=True)


@pytest.fixture
def observer(thing_id: str) -> Iterator[Observer]:
    watcher = Observer(f"things/{thing_id}/#")
    yield watcher
    watcher.close()


# -- the shared broker -----------------------------------------------------------------------


async def test_telemetry_report_and_event_arrive_as_json(thing_id: str, observer: Observer) -> None:
    async with Device(thing_id, "secret") as device:
        await device.telemetry({"temp": 21.5, "hum": 40})
        await device.telemetry(
            [{"ts": "2026-11-22T08:00:00Z", "temp": 21.4}, {"ts": 1795334400000, "temp": 21.6}]
        )
        await device.report({"speed": 1200, "$version": 7, "net": {"ssid": None}})
        await device.event("overheat", {"temp": 96.0})
        # Returning from an awaited publish means the broker acknowledged it.
        assert device.stats.acked == device.stats.submitted == 4

    base = f"things/{thing_id}"
    first, second = await observer.wait_for(f"{base}/telemetry", 2)
    assert first.json() == {"temp": 21.5, "hum": 40}
    assert second.json() == [
        {"ts": "2026-11-22T08:00:00Z", "temp": 21.4},
        {"ts": 1795334400000, "temp": 21.6},
    ]
    (report,) = await observer.wait_for(f"{base}/reported")
    assert report.json() == {"speed": 1200, "net": {"ssid": None}}  # no "$version"
    (event,) = await observer.wait_for(f"{base}/events/overheat")
    assert event.json() == {"temp": 96.0}


async def test_birth_is_online_retained_and_a_clean_close_says_offline(
    thing_id: str, observer: Observer
) -> None:
    presence = f"things/{thing_id}/presence"
    async with Device(thing_id) as device:
        await observer.wait_for(presence)
        assert await asyncio.to_thread(retained, presence) == b"online"
        assert device.connected
    assert [m.payload for m in await observer.wait_for(presence, 2)] == [b"online", b"offline"]
    assert await asyncio.to_thread(retained, presence) == b"offline"
    await asyncio.sleep(0.2)
    assert len(observer.on(presence)) == 2  # a clean close: no last will on top


async def test_the_last_will_says_offline_when_the_socket_dies(
    thing_id: str, observer: Observer
) -> None:
    presence = f"things/{thing_id}/presence"
    device = Device(thing_id, keepalive=5)
    await device.connect()
    await observer.wait_for(presence)
    device.drop_connection()  # the socket closes without DISCONNECT, as in a power cut
    await device.close()  # gone for good: nothing more is said, the broker speaks for it
    birth, will = await observer.wait_for(presence, 2)
    assert (birth.payload, will.payload) == (b"online", b"offline")
    assert await asyncio.to_thread(retained, presence) == b"offline"


async def test_desired_state_retained_before_connect_and_later_changes(
    thing_id: str, observer: Observer
) -> None:
    desired_topic = f"things/{thing_id}/desired"
    await asyncio.to_thread(publish, desired_topic, b'{"speed": 1200, "$version": 3}', retain=True)
    got: list[dict[str, Any]] = []
    applied: list[dict[str, Any]] = []

    async def apply(desired: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)  # async callbacks are awaited
        applied.append(desired)
        return desired  # reported back as applied, without "$version"

    async with Device(thing_id) as device:
        device.on_desired(got.append)
        device.on_desired(apply)
        async with asyncio.timeout(WAIT):
            while len(applied) < 1:
                await asyncio.sleep(0.01)
        assert got == [{"speed": 1200, "$version": 3}]
        assert device.desired == {"speed": 1200, "$version": 3}
        (report,) = await observer.wait_for(f"things/{thing_id}/reported")
        assert report.json() == {"speed": 1200}

        await asyncio.to_thread(
            publish, desired_topic, b'{"speed": 1500, "mode": "eco", "$version": 4}', retain=True
        )
        async with asyncio.timeout(WAIT):
            while len(applied) < 2:
                await asyncio.sleep(0.01)
        assert got[-1] == {"speed": 1500, "mode": "eco", "$version": 4}
        reports = await observer.wait_for(f"things/{thing_id}/reported", 2)
        assert reports[1].json() == {"speed": 1500, "mode": "eco"}
        assert device.stats.desired_received == 2


async def test_transmit_only_devices_do_not_subscribe(thing_id: str) -> None:
    await asyncio.to_thread(publish, f"things/{thing_id}/desired", b'{"a": 1}', retain=True)
    got: list[dict[str, Any]] = []
    async with Device(thing_id, follow_desired=False) as device:
        device.on_desired(got.append)
        await device.telemetry({"temp": 1.0})
        await asyncio.sleep(0.3)
    assert got == []


async def test_reconnects_after_the_broker_drops_it_for_a_takeover(
    thing_id: str, observer: Observer
) -> None:
    async with Device(thing_id, **FAST) as device:
        # Mosquitto disconnects a client when another connects with the same client id.
        intruder = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=thing_id, reconnect_on_failure=False
        )
        intruder.connect(*MOSQUITTO, keepalive=30)
        intruder.loop_start()
        try:
            async with asyncio.timeout(WAIT):
                while device.stats.reconnects < 1 or not device.connected:
                    await asyncio.sleep(0.02)
        finally:
            intruder.disconnect()
            intruder.loop_stop()
        await device.telemetry({"after": 1})
    (message,) = await observer.wait_for(f"things/{thing_id}/telemetry")
    assert message.json() == {"after": 1}
    births = [m for m in observer.on(f"things/{thing_id}/presence") if m.payload == b"online"]
    assert len(births) == 2  # a birth message on every connect


class Outage:
    """A TCP relay to Mosquitto that can cut its connections and refuse new ones, as a
    network outage would; the broker sees the device vanish without DISCONNECT."""

    def __init__(self) -> None:
        self.open = True
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.transport.abort()
            return
        up_reader, up_writer = await asyncio.open_connection(*MOSQUITTO)
        self._pairs.append((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
        except OSError:
            pass
        finally:
            sink.transport.abort()

    def cut(self) -> None:
        self.open = False
        for device_side, broker_side in self._pairs:
            device_side.transport.abort()
            broker_side.transport.abort()
        self._pairs.clear()

    async def close(self) -> None:
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@pytest.fixture
async def outage() -> AsyncIterator[Outage]:
    relay = Outage()
    await relay.start()
    yield relay
    await relay.close()


async def test_the_offline_queue_is_delivered_after_reconnect(
    thing_id: str, observer: Observer, outage: Outage
) -> None:
    device = Device(thing_id, url=f"mqtt://127.0.0.1:{outage.port}", queue_limit=5, **FAST)
    await device.connect()
    try:
        await device.telemetry({"n": 0})
        outage.cut()
        async with asyncio.timeout(WAIT):
            while device.connected:
                await asyncio.sleep(0.01)
        waiting = [asyncio.create_task(device.telemetry({"n": n})) for n in range(1, 8)]
        async with asyncio.timeout(WAIT):  # all seven handed over, and a refused reconnect
            while device.queued + device.stats.dropped < 7 or not device.stats.connect_failures:
                await asyncio.sleep(0.01)
        assert device.queued == 5 and device.stats.dropped == 2  # the oldest made room
        outage.open = True
        done = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), WAIT)
        assert [type(r) for r in done[:2]] == [MessageDropped, MessageDropped]
        assert done[2:] == [None] * 5  # acknowledged after the reconnect
    finally:
        await device.close()
    delivered = await observer.wait_for(f"things/{thing_id}/telemetry", 6)
    assert [m.json()["n"] for m in delivered] == [0, 3, 4, 5, 6, 7]
    presence = [m.payload for m in observer.on(f"things/{thing_id}/presence")]
    assert presence[:3] == [b"online", b"offline", b"online"]  # the will fired on the cut


# -- private brokers -------------------------------------------------------------------------


class Mosquitto:
    """A private Mosquitto on a free port with the given listener settings."""

    def __init__(self, workdir: Path, settings: str = "allow_anonymous true") -> None:
        binary = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if binary is None:
            if IN_CI:
                pytest.fail("CI requires the mosquitto binary")
            pytest.skip("the mosquitto binary is not installed")
        self.binary = binary
        self.port = free_port()
        self.config = workdir / "mosquitto.conf"
        # Run as root, Mosquitto switches to its own user, which cannot read files under
        # pytest's private temporary directories; stay root then (ignored otherwise).
        stay = "user root\n" if os.geteuid() == 0 else ""
        self.config.write_text(f"listener {self.port} 127.0.0.1\n{stay}{settings}\n")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + WAIT
        while not _reachable(("127.0.0.1", self.port)):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the private mosquitto did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(WAIT)


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path)
    broker.start()
    yield broker
    broker.stop()


async def test_reconnects_after_the_broker_restarts(
    thing_id: str, private_broker: Mosquitto
) -> None:
    url = f"mqtt://127.0.0.1:{private_broker.port}"
    async with Device(thing_id, url=url, **FAST) as device:
        await device.telemetry({"n": 1})
        await asyncio.to_thread(private_broker.stop)
        async with asyncio.timeout(WAIT):
            while device.connected:
                await asyncio.sleep(0.01)
        pending = asyncio.create_task(device.telemetry({"n": 2}))
        async with asyncio.timeout(WAIT):
            while not device.queued:
                await asyncio.sleep(0.01)
        assert not pending.done() and device.queued == 1
        await asyncio.to_thread(private_broker.start)
        await asyncio.wait_for(pending, WAIT)  # acknowledged by the restarted broker
        assert device.stats.reconnects == 1
        assert device.stats.acked == 2


async def test_refused_credentials_fail_connect(tmp_path: Path, thing_id: str) -> None:
    broker = Mosquitto(tmp_path, "allow_anonymous false")
    await asyncio.to_thread(broker.start)
    try:
        device = Device(thing_id, "wrong", url=f"mqtt://127.0.0.1:{broker.port}")
        with pytest.raises(ConnectRefused, match="not authorised"):
            await device.connect(give_up_after=WAIT)
        with pytest.raises(Exception, match="closed"):
            await device.telemetry({"temp": 1})
    finally:
        await asyncio.to_thread(broker.stop)


async def test_an_unreachable_broker_times_out(thing_id: str) -> None:
    device = Device(thing_id, url=f"mqtt://127.0.0.1:{free_port()}", **FAST)
    started = time.monotonic()
    with pytest.raises(ConnectTimeout, match=r"refused|failed"):
        await device.connect(give_up_after=0.8)
    # It gave up: not after its default 30 s, nor never. (How close to 0.8 s it keeps on a
    # loaded machine is no test's business.)
    assert time.monotonic() - started < 10
    assert device.stats.connect_failures >= 2


def _make_certificates(directory: Path) -> None:
    """A throwaway CA and a server certificate for 127.0.0.1 signed by it."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1",
            "-subj", "/CN=iotas test CA")  # fmt: skip
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "1",
            "-extfile", "san.cnf")  # fmt: skip


async def test_mqtts_with_a_ca_file(tmp_path: Path, thing_id: str) -> None:
    if shutil.which("openssl") is None:
        if IN_CI:
            pytest.fail("CI requires openssl (this test makes its own CA and server certificate)")
        pytest.skip("openssl is not installed")
    await asyncio.to_thread(_make_certificates, tmp_path)
    broker = Mosquitto(
        tmp_path,
        f"allow_anonymous true\ncafile {tmp_path / 'ca.pem'}\n"
        f"certfile {tmp_path / 'server.pem'}\nkeyfile {tmp_path / 'server.key'}",
    )
    await asyncio.to_thread(broker.start)
    try:
        url = f"mqtts://127.0.0.1:{broker.port}"
        async with Device(thing_id, url=url, ca_file=str(tmp_path / "ca.pem")) as device:
            await device.telemetry({"temp": 1.0})
            assert device.stats.acked == 1
        # Without the CA the certificate cannot be verified: never connected, no secret sent.
        untrusting = Device(thing_id, url=url, **FAST)
        with pytest.raises(ConnectTimeout, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.connect(give_up_after=0.5)
    finally:
        await asyncio.to_thread(broker.stop)


# -- actions (paho plays iotas: it sends invocations and watches the results) ---------------


def action_results(observer: Observer, thing_id: str, name: str, inv: str) -> list[Any]:
    return [m.json() for m in observer.on(f"things/{thing_id}/actions/{name}/{inv}/result")]


async def final_result(observer: Observer, thing_id: str, name: str, inv: str) -> list[Any]:
    async with asyncio.timeout(WAIT):
        while not any(
            r["status"] != "running" for r in action_results(observer, thing_id, name, inv)
        ):
            await asyncio.sleep(0.01)
    return action_results(observer, thing_id, name, inv)


async def test_a_handler_answers_running_progress_then_its_output(
    thing_id: str, observer: Observer
) -> None:
    async with Device(thing_id, "secret") as device:

        @device.on_action("blink")
        async def blink(value: Any, progress: Any) -> Any:
            await progress(50)
            return {"blinked": value["times"]}

        await asyncio.sleep(0)  # the subscription is sent at once; Mosquitto keeps order
        publish(f"things/{thing_id}/actions/blink/inv-1", b'{"times": 3}')
        answers = await final_result(observer, thing_id, "blink", "inv-1")
    assert answers == [
        {"status": "running"},
        {"status": "running", "progress": 50.0},
        {"status": "succeeded", "output": {"blinked": 3}},
    ]


async def test_a_raise_fails_and_an_unknown_action_fails_at_once(
    thing_id: str, observer: Observer
) -> None:
    device = Device(thing_id, "secret")

    @device.on_action("reboot")
    async def reboot(value: Any, progress: Any) -> Any:
        raise ActionError("busy", code="busy")

    async with device:
        publish(f"things/{thing_id}/actions/reboot/inv-1", b"")
        publish(f"things/{thing_id}/actions/dance/inv-2", b"{}")
        publish(f"things/{thing_id}/actions/reboot/inv-3", b"not json")
        failed = (await final_result(observer, thing_id, "reboot", "inv-1"))[-1]
        unknown = (await final_result(observer, thing_id, "dance", "inv-2"))[-1]
        bad = (await final_result(observer, thing_id, "reboot", "inv-3"))[-1]
    assert failed == {"status": "failed", "error": {"code": "busy", "message": "busy"}}
    assert unknown["status"] == "failed" and unknown["error"]["code"] == "unknown"
    assert bad["error"]["code"] == "bad_input"
    assert device.actions.stats.failed == 3


async def test_a_repeat_runs_the_handler_once_even_across_a_reconnect(
    thing_id: str, observer: Observer
) -> None:
    runs: list[Any] = []
    release = asyncio.Event()
    device = Device(thing_id, "secret", **FAST)

    @device.on_action("ping")
    async def ping(value: Any, progress: Any) -> Any:
        runs.append(value)
        await release.wait()
        return "pong"

    async with device:
        publish(f"things/{thing_id}/actions/ping/inv-1", b"1")
        async with asyncio.timeout(WAIT):
            while not runs:
                await asyncio.sleep(0.01)
        device.drop_connection()
        async with asyncio.timeout(WAIT):
            while device.stats.reconnects < 1 or not device.connected:
                await asyncio.sleep(0.01)
        publish(f"things/{thing_id}/actions/ping/inv-1", b"1")  # sent again after the drop
        async with asyncio.timeout(WAIT):
            while device.actions.stats.repeated < 1:
                await asyncio.sleep(0.01)
        release.set()
        answers = await final_result(observer, thing_id, "ping", "inv-1")
    assert runs == [1]
    assert answers[-1] == {"status": "succeeded", "output": "pong"}


async def test_handlers_run_concurrently(thing_id: str, observer: Observer) -> None:
    started: list[str] = []
    both = asyncio.Event()

    async with Device(thing_id, "secret") as device:

        @device.on_action("wait")
        async def wait(value: Any, progress: Any) -> Any:
            started.append(value)
            if len(started) == 2:
                both.set()
            await asyncio.wait_for(both.wait(), WAIT)
            return value

        await asyncio.sleep(0)
        publish(f"things/{thing_id}/actions/wait/a", b'"a"')
        publish(f"things/{thing_id}/actions/wait/b", b'"b"')
        assert (await final_result(observer, thing_id, "wait", "a"))[-1]["output"] == "a"
        assert (await final_result(observer, thing_id, "wait", "b"))[-1]["output"] == "b"
