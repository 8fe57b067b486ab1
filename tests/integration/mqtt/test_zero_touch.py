"""Zero touch: a device that has only a claim token and its serial number provisions itself,
connects over MQTT with TLS with the certificate it got, follows its desired state and
reports, without an operator touching it. The SDK plays the device."""

from __future__ import annotations

from pathlib import Path

from integration.mqtt.mqtt_support import Iotas, eventually
from iotas.sdk import Device
from iotas.sdk.provisioning import provision


async def test_a_device_with_a_claim_and_a_serial_ends_up_reporting(
    embedded: Iotas, tmp_path: Path
) -> None:
    async with embedded.client() as api:
        claim = await api.post(
            "/api/v1/claims",
            json={
                "template": {
                    "namespace": "plant",
                    "kind": "meter",
                    "labels": {"batch": "zt"},
                    "desired": {"interval": 30},
                },
                "max_uses": 10,
            },
        )
        assert claim.status_code == 201, claim.text
        token = claim.json()["token"]

    # On the device: nothing but the token, its serial and where iotas is.
    done = await provision(embedded.url, token, "SN-0042")
    assert done.private_key is not None  # made on the device: only the CSR travelled
    files = {"ca": done.ca_certificate, "crt": done.certificate, "key": done.private_key}
    for name, text in files.items():
        (tmp_path / f"device.{name}").write_text(text)
    host, port = embedded.mqtts
    applied: list[int] = []
    device = Device(
        done.thing_id,
        url=f"mqtts://{host}:{port}",
        ca_file=str(tmp_path / "device.ca"),
        cert_file=str(tmp_path / "device.crt"),
        key_file=str(tmp_path / "device.key"),
    )
    async with device:

        @device.on_desired
        def follow(desired: dict[str, object]) -> dict[str, object]:
            interval = desired.get("interval")
            assert isinstance(interval, int)
            applied.append(interval)
            return {"interval": interval}

        await device.telemetry({"kwh": 1234.5})
        await eventually(lambda: applied == [30], timeout=10)

        async with embedded.client() as api:

            async def reporting() -> bool:
                thing = (await api.get(f"/api/v1/things/{done.thing_id}")).json()
                return bool(thing["connected"] and thing["twin"]["status"] == "in_sync")

            await eventually(reporting, timeout=10)
            latest = (await api.get(f"/api/v1/things/{done.thing_id}/telemetry/latest")).json()
            assert latest["kwh"]["value"] == 1234.5
            history = (await api.get(f"/api/v1/things/{done.thing_id}/history")).json()["items"]
            assert history[0]["type"] == "thing_created"
            assert history[0]["actor"].startswith("claim:")
            assert {"reported_changed", "thing_connected"} <= {e["type"] for e in history}
    assert done.thing_id == "plant:SN-0042"
