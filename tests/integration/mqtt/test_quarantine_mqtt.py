"""Quarantine on the embedded broker: the device's live session is dropped and its reconnect
refused within 5 seconds; a released Thing comes back only with its new credential."""

from __future__ import annotations

import time

from integration.mqtt.mqtt_support import Device, Iotas, eventually


async def test_quarantine_drops_the_session_and_refuses_reconnects(embedded: Iotas) -> None:
    async with embedded.client() as api:
        thing = "/api/v1/things/acme:cam-q"
        secret = await embedded.register(api, "acme:cam-q")
        device = embedded.device("acme:cam-q", secret)
        try:
            assert device.wait_connack() == 0
            device.send("reported", b'{"fw": "6.6.6"}').wait_for_publish(5)
            started = time.monotonic()
            response = await api.post(f"{thing}/quarantine", json={"reason": "beaconing"})
            assert response.status_code == 200, response.text

            async def gone() -> bool:
                doc = (await api.get(thing)).json()
                return not device.client.is_connected() and doc["connected"] is False

            await eventually(gone, timeout=5)
            assert time.monotonic() - started < 5
        finally:
            device.close(clean=False)
        again = Device(embedded.mqtt, "acme:cam-q", secret)
        try:
            assert again.wait_connack() != 0
        finally:
            again.close(clean=False)
        # The evidence holds what the device had reported before it was cut off.
        digest = (await api.get(thing)).json()["quarantine"]["snapshot"]
        evidence = (await api.get(f"/api/v1/snapshots/{digest}")).json()
        assert evidence["thing"]["twin"]["reported"] == {"fw": "6.6.6"}

        released = await api.post(
            f"{thing}/quarantine/release", json={"credential": {"type": "password"}}
        )
        assert released.status_code == 200, released.text
        new_secret = released.json()["credential"]["secret"]
        old = Device(embedded.mqtt, "acme:cam-q", secret)
        try:
            assert old.wait_connack() != 0
        finally:
            old.close(clean=False)
        back = Device(embedded.mqtt, "acme:cam-q", new_secret)
        try:
            assert back.wait_connack() == 0
        finally:
            back.close()
