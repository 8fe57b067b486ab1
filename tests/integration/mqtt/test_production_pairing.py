"""The production pairing end to end: iotas on PostgreSQL, a client of a Mosquitto configured
as docs/deployment.md says (`iotas broker-config mosquitto`, included from a main
configuration with persistence, as Debian's package installs it). A device provisions itself
by claim over HTTP (with an external broker that is the way; docs/mqtt.md), the configuration
is written again and Mosquitto restarted, as after any new credential; then the device logs
in with its certificate, gets its desired state, follows changes to it and reports, and a
password device sends telemetry and gets its desired state."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from integration.mqtt.mqtt_support import Device, client_of_mosquitto, eventually
from integration.mqtt.test_mosquitto_config import Broker
from integration.mqtt.test_mosquitto_tls import _generate, _wait_listening, out_dir
from iotas.sdk import Device as SdkDevice
from iotas.sdk.provisioning import provision
from support import LiveServer, free_port

pytestmark = pytest.mark.mosquitto

__all__ = ["out_dir"]  # the fixture, used by name

PUMP = "acme:prod-pump"
WAIT = 20.0  # iotas reconnects to a restarted broker after gmqtt's 6 s delay


@pytest.fixture
def database_url(pg_database: str) -> str:
    return pg_database


@pytest.fixture
def main_config(out_dir: Path) -> Iterator[Path]:
    """Mosquitto's main configuration: persistence on (retained messages and iotas' session
    survive a restart) and the folder `iotas broker-config` writes to included."""
    folder = Path(tempfile.mkdtemp(prefix="iotas-mosquitto-main-"))
    folder.chmod(0o755)
    store = folder / "store"
    store.mkdir()
    if os.geteuid() == 0:  # Mosquitto writes its store after dropping to its own user
        shutil.chown(store, "mosquitto", "mosquitto")
    conf = folder / "main.conf"
    conf.write_text(f"persistence true\npersistence_location {store}/\ninclude_dir {out_dir}\n")
    try:
        yield conf
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _twin(api: httpx.AsyncClient, thing_id: str) -> dict[str, object]:
    twin: dict[str, object] = (await api.get(f"/api/v1/things/{thing_id}/twin")).json()
    return twin


async def test_provisioning_telemetry_and_desired_state_on_mosquitto_and_postgresql(
    server: LiveServer, out_dir: Path, main_config: Path, tmp_path: Path
) -> None:
    port, tls_port = free_port(), free_port()
    await _generate(server, out_dir, port, tls_port)
    broker = Broker(main_config, port)
    node = client_of_mosquitto(server, out_dir, tmp_path / "node")
    # Nodes of one deployment share one CA (docs/security.md): the node takes the one the
    # test's server made for the broker's TLS listener.
    shutil.copytree(server.settings.data_dir / "ca", Path(node.settings["data_dir"]) / "ca")
    try:
        await asyncio.to_thread(broker.start)
        await asyncio.to_thread(node.start)
        async with node.client() as api:
            claim = await api.post(
                "/api/v1/claims",
                json={
                    "template": {"namespace": "plant", "kind": "meter", "desired": {"every": 30}},
                    "max_uses": 1,
                },
            )
            assert claim.status_code == 201, claim.text
            done = await provision(node.url, claim.json()["token"], "SN-0077")
            assert done.private_key is not None and done.thing_id == "plant:SN-0077"
            assert (await api.post("/api/v1/things", json={"id": PUMP, "kind": "pump"})).is_success
            made = await api.post(f"/api/v1/things/{PUMP}/credentials", json={"type": "password"})
            secret = made.json()["secret"]

            # New credentials reach Mosquitto as the docs say: write the files again, restart.
            report = await _generate(server, out_dir, port, tls_port)
            assert report["things"] == 2 and report["tls"]["certificate_things"] == 1, report
            await asyncio.to_thread(broker.stop)
            await asyncio.to_thread(broker.start)
            await asyncio.to_thread(_wait_listening, tls_port)

            files = {"ca": done.ca_certificate, "crt": done.certificate, "key": done.private_key}
            for name, text in files.items():
                (tmp_path / f"device.{name}").write_text(text)
            applied: list[object] = []
            meter = SdkDevice(
                done.thing_id,
                url=f"mqtts://127.0.0.1:{tls_port}",
                ca_file=str(out_dir / "ca.crt"),
                cert_file=str(tmp_path / "device.crt"),
                key_file=str(tmp_path / "device.key"),
            )
            async with meter:

                @meter.on_desired
                def follow(desired: dict[str, object]) -> dict[str, object]:
                    applied.append(desired.get("every"))
                    return {"every": desired.get("every")}

                await meter.telemetry({"kwh": 1234.5})
                # The template's desired state, retained across the restart.
                await eventually(lambda: applied == [30], timeout=WAIT)

                async def meter_in_sync() -> bool:
                    thing = (await api.get(f"/api/v1/things/{done.thing_id}")).json()
                    return bool(thing["connected"] and thing["twin"]["status"] == "in_sync")

                await eventually(meter_in_sync, timeout=WAIT)

                async def meter_telemetry() -> object:
                    path = f"/api/v1/things/{done.thing_id}/telemetry/latest"
                    return (await api.get(path)).json().get("kwh", {}).get("value")

                assert await eventually(meter_telemetry, timeout=WAIT) == 1234.5
                changed = await api.patch(
                    f"/api/v1/things/{done.thing_id}/twin/desired", json={"every": 60}
                )
                assert changed.status_code == 200, changed.text
                await eventually(lambda: applied == [30, 60], timeout=WAIT)

            pump = await asyncio.to_thread(node_device, port, secret)
            try:
                pump.client.subscribe(pump.topic("desired"), qos=1)
                pump.send("telemetry", b'{"flow": 2.5}').wait_for_publish(5)
                pump.send("reported", b'{"sp": 1}').wait_for_publish(5)

                async def pump_reported() -> bool:
                    twin = await _twin(api, PUMP)
                    flow = (await api.get(f"/api/v1/things/{PUMP}/telemetry/latest")).json()
                    return twin["reported"] == {"sp": 1} and "flow" in flow

                await eventually(pump_reported, timeout=WAIT)
                # After the report (which moves the twin's version too), so the version is known.
                changed = await api.patch(f"/api/v1/things/{PUMP}/twin/desired", json={"sp": 2})
                expected = {"sp": 2, "$version": changed.json()["version"]}
                await eventually(lambda: pump.desired()[-1:] == [expected], timeout=WAIT)
            finally:
                pump.close()
    finally:
        node.stop()
        await asyncio.to_thread(broker.stop)


def node_device(port: int, secret: str) -> Device:
    """The pump on Mosquitto's password listener (paho, MQTT 3.1.1)."""
    device = Device(("127.0.0.1", port), PUMP, secret)
    assert device.wait_connack() == 0, device.connack
    return device
