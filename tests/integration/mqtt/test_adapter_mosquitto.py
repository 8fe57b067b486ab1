"""The MQTT adapter against the real Mosquitto at 127.0.0.1:1883, with paho-mqtt as the device.

Each test uses its own Thing ids and its own iotas client id, so tests (and other users of
the shared broker) do not see each other's Things.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as paho
import pytest

from support import free_port

MOSQUITTO = ("127.0.0.1", 1883)
IN_CI = os.environ.get("CI", "").lower() == "true"


def _mosquitto_up() -> bool:
    import socket

    try:
        with socket.create_connection(MOSQUITTO, timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _need_mosquitto() -> None:
    if not _mosquitto_up():
        if IN_CI:
            pytest.fail("CI requires Mosquitto at 127.0.0.1:1883")
        pytest.skip("Mosquitto is not running at 127.0.0.1:1883")


class Iotas:
    """iotas in a subprocess (so a test can SIGKILL it), on SQLite, connected to Mosquitto."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.token = "iotas_t_" + secrets.token_urlsafe(16)
        self.client_id = "iotas-test-" + secrets.token_hex(4)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        code = (
            "from pathlib import Path; from iotas.server import serve; "
            "from iotas.settings import Settings; "
            f"serve(Settings(data_dir=Path({str(self.data_dir)!r}), port={self.port}, "
            f"admin_token={self.token!r}, log_level='warning', "
            f"mqtt_url='mqtt://127.0.0.1:1883', mqtt_client_id={self.client_id!r}, "
            "mqtt_session_expiry=120))"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError("iotas exited during start")
            time.sleep(0.1)
        raise RuntimeError("iotas did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )


@pytest.fixture
async def iotas(tmp_path: Path) -> AsyncIterator[Iotas]:
    node = Iotas(tmp_path / "data")
    await asyncio.to_thread(node.start)
    try:
        yield node
    finally:
        await asyncio.to_thread(node.stop)


def _device(client_id: str, on_message: Callable[[Any], None] | None = None) -> paho.Client:
    device = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
    device.will_set(f"things/{client_id}/presence", "offline", qos=1, retain=True)
    if on_message is not None:
        device.on_message = lambda _c, _u, msg: on_message(msg)
    device.connect(*MOSQUITTO, keepalive=30)
    device.loop_start()
    return device


async def _eventually(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


def _ns() -> str:
    return "t" + secrets.token_hex(4)


async def test_reported_presence_events_and_desired_round_trip(iotas: Iotas) -> None:
    thing = f"{_ns()}:dev-1"
    received: list[dict[str, Any]] = []
    async with iotas.client() as api:
        assert (
            await api.post("/api/v1/things", json={"id": thing, "kind": "sensor"})
        ).status_code == 201
        device = _device(thing, lambda msg: received.append(orjson.loads(msg.payload)))
        try:
            device.subscribe(f"things/{thing}/desired", qos=1)
            device.publish(
                f"things/{thing}/presence", "online", qos=1, retain=True
            ).wait_for_publish(5)
            device.publish(f"things/{thing}/reported", orjson.dumps({"fw": "1.0", "sp": 20}), qos=1)
            device.publish(f"things/{thing}/events/overheat", orjson.dumps({"t": 91}), qos=1)

            async def twin_has_report() -> Any:
                t = (await api.get(f"/api/v1/things/{thing}")).json()
                return t if t["twin"]["reported"].get("fw") == "1.0" and t["connected"] else None

            got = await _eventually(twin_has_report)
            assert got["twin"]["metadata"]["reported"]["/fw"]["source"] == thing

            r = await api.patch(f"/api/v1/things/{thing}/twin/desired", json={"sp": 22})
            version = r.json()["version"]
            await _eventually(lambda: _async(any(m.get("sp") == 22 for m in received)))
            assert received[-1] == {"sp": 22, "$version": version}

            device.publish(f"things/{thing}/reported", orjson.dumps({"sp": 22}), qos=1)

            async def in_sync() -> bool:
                twin = (await api.get(f"/api/v1/things/{thing}/twin")).json()
                return bool(twin["status"] == "in_sync")

            await _eventually(in_sync)
        finally:
            device.loop_stop()
            device.socket().close()  # not a clean DISCONNECT: the last will must fire

        async def offline() -> bool:
            return not (await api.get(f"/api/v1/things/{thing}")).json()["connected"]

        await _eventually(offline, timeout=60)
        types = [
            e["type"] for e in (await api.get(f"/api/v1/things/{thing}/history")).json()["items"]
        ]
        assert types[:2] == ["thing_created", "thing_connected"]
        assert "thing_event" in types and types[-1] == "thing_disconnected"
        events = (await api.get(f"/api/v1/things/{thing}/history")).json()["items"]
        said = next(e for e in events if e["type"] == "thing_event")
        assert said["patch"] == {"name": "overheat", "data": {"t": 91}}
        assert said["actor"] == thing


async def _async(value: Any) -> Any:
    return value


async def test_a_reconnecting_device_gets_the_latest_desired_state(iotas: Iotas) -> None:
    thing = f"{_ns()}:dev-2"
    async with iotas.client() as api:
        await api.post("/api/v1/things", json={"id": thing, "kind": "sensor"})
        for sp in (1, 2, 3):
            await api.patch(f"/api/v1/things/{thing}/twin/desired", json={"sp": sp})
        await asyncio.sleep(0.5)
    received: list[dict[str, Any]] = []
    device = _device(thing, lambda msg: received.append(orjson.loads(msg.payload)))
    try:
        device.subscribe(f"things/{thing}/desired", qos=1)
        await _eventually(lambda: _async(received))
        assert received[-1] == {"sp": 3, "$version": 3}
    finally:
        device.loop_stop()
        device.disconnect()


async def test_bad_messages_are_counted_and_others_still_flow(iotas: Iotas) -> None:
    thing = f"{_ns()}:dev-3"
    async with iotas.client() as api:
        await api.post("/api/v1/things", json={"id": thing, "kind": "sensor"})
        device = _device(thing)
        try:
            bad = [
                (f"things/{thing}/reported", b"not json"),
                (f"things/{thing}/reported", b"[1, 2]"),
                (f"things/{thing}/reported", b'{"x": NaN}'),
                (f"things/{thing}/presence", b"maybe"),
                (f"things/{thing}/nonsense", b"{}"),
                (f"things/{_ns()}:nobody/reported", b'{"a": 1}'),
                (f"things/{thing}/reported", b'{"big": "' + b"x" * 300_000 + b'"}'),
            ]
            for topic, payload in bad:
                device.publish(topic, payload, qos=1).wait_for_publish(5)
            device.publish(f"things/{thing}/reported", b'{"ok": true}', qos=1).wait_for_publish(5)

            async def good_arrived() -> bool:
                twin = (await api.get(f"/api/v1/things/{thing}/twin")).json()
                return bool(twin["reported"] == {"ok": True})

            await _eventually(good_arrived)
            stats = (await api.get("/api/v1/stats")).json()["ingest"]["rejected"]
            for reason in ("bad_reported", "bad_presence", "unknown_thing", "too_large"):
                assert stats.get(reason, 0) >= 1, (reason, stats)
            metrics = (await api.get("/metrics")).text
            assert 'iotas_messages_rejected_total{reason="unknown_thing"}' in metrics
            async with httpx.AsyncClient(base_url=iotas.url) as anon:
                assert (await anon.get("/metrics")).status_code == 401
        finally:
            device.loop_stop()
            device.disconnect()


async def test_sigkill_mid_stream_loses_no_acknowledged_message(tmp_path: Path) -> None:
    node = Iotas(tmp_path / "data")
    await asyncio.to_thread(node.start)
    thing = f"{_ns()}:dev-4"
    # The shared Mosquitto keeps its default max_queued_messages (1000) for a session that is
    # away; more than that queued while iotas is down would be dropped by the broker itself.
    total = 900
    try:
        async with node.client() as api:
            await api.post("/api/v1/things", json={"id": thing, "kind": "sensor"})
        device = _device(thing)
        try:
            infos = []
            for i in range(total):
                infos.append(
                    device.publish(f"things/{thing}/reported", orjson.dumps({f"k{i}": i}), qos=1)
                )
                if i == total // 3:
                    # Let iotas be in the middle of the stream, then kill it without warning.
                    await asyncio.sleep(0.3)
                    await asyncio.to_thread(node.kill)
            for info in infos:
                info.wait_for_publish(10)
                assert info.is_published()  # the broker told the device: received
        finally:
            device.loop_stop()
            device.disconnect()
        await asyncio.to_thread(node.start)  # same data dir, same client id: same session
        async with node.client() as api:

            async def all_there() -> Any:
                twin = (await api.get(f"/api/v1/things/{thing}/twin")).json()
                return twin if len(twin["reported"]) == total else None

            try:
                twin = await _eventually(all_there, timeout=30)
            except AssertionError:
                twin = (await api.get(f"/api/v1/things/{thing}/twin")).json()
                have = {int(k[1:]) for k in twin["reported"]}
                missing = sorted(set(range(total)) - have)
                raise AssertionError(
                    f"{len(missing)} missing: {missing[:20]} ... {missing[-5:]}"
                ) from None
            assert twin["reported"] == {f"k{i}": i for i in range(total)}
            verify = (await api.get("/api/v1/journal/verify")).json()
            assert verify["ok"] and verify["checked"] == total + 1
    finally:
        await asyncio.to_thread(node.stop)
