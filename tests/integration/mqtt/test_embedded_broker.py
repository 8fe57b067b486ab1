"""What only the embedded broker does: devices log in with iotas credentials, stay in their
own topics, and get a PUBACK only for what iotas has committed. paho-mqtt plays the device.
(What a device sees on either transport is in test_devices.py.)"""

from __future__ import annotations

import asyncio
import socket

import pytest

from integration.mqtt.mqtt_support import Device, Iotas, eventually
from iotas.broker.embedded import EmbeddedBroker, PortInUse


async def test_a_puback_means_committed(embedded: Iotas) -> None:
    async with embedded.client() as api:
        secret = await embedded.register(api, "acme:dev-1")
        device = embedded.device("acme:dev-1", secret)
        try:
            device.send("reported", b'{"fw": "1.0"}').wait_for_publish(5)
            device.send("telemetry", b'{"temp": 20.5}').wait_for_publish(5)
            # QoS 2 too: its PUBREC (and so the PUBCOMP) comes only after the commit.
            device.send("telemetry", b'{"hum": 40}', qos=2).wait_for_publish(5)
            # No waiting: what was acknowledged is there when the acknowledgement arrives.
            twin = (await api.get("/api/v1/things/acme:dev-1/twin")).json()
            assert twin["reported"] == {"fw": "1.0"}
            latest = (await api.get("/api/v1/things/acme:dev-1/telemetry/latest")).json()
            assert {k: v["value"] for k, v in latest.items()} == {"temp": 20.5, "hum": 40}
        finally:
            device.close()


async def test_wrong_secret_unknown_thing_and_borrowed_client_id_are_refused(
    embedded: Iotas,
) -> None:
    async with embedded.client() as api:
        secret = await embedded.register(api, "acme:dev-2")
        await embedded.register(api, "acme:other")
        before = await embedded.rejected(api)
        for thing, password, client_id in (
            ("acme:dev-2", "wrong", None),
            ("acme:nobody", "x", None),
            ("acme:dev-2", None, None),
            ("acme:dev-2", secret, "acme:other"),  # its own secret, another's client id
        ):
            device = Device(embedded.mqtt, thing, password, client_id=client_id)
            try:
                assert device.wait_connack() != 0, (thing, password, client_id)
            finally:
                device.close(clean=False)
        rejected = await embedded.rejected(api)
        assert rejected.get("auth_failed", 0) - before.get("auth_failed", 0) == 4, rejected


async def test_a_device_cannot_touch_another_devices_topics(embedded: Iotas) -> None:
    async with embedded.client() as api:
        a = embedded.device("acme:a", await embedded.register(api, "acme:a"))
        b = embedded.device("acme:b", await embedded.register(api, "acme:b"))
        before = await embedded.rejected(api)
        try:
            b.client.subscribe("things/acme:b/desired", qos=1)
            for pattern in ("things/acme:b/#", "things/+/desired", "#", "things/acme:b/desired"):
                a.client.subscribe(pattern, qos=1)
            await eventually(lambda: len(a.suback) >= 4)
            assert all(getattr(code, "is_failure", code == 0x80) for code in a.suback), a.suback
            for topic in ("things/acme:b/reported", "things/acme:b/presence", "things/x/reported"):
                a.client.publish(topic, b'{"hijacked": true}', qos=1).wait_for_publish(5)
            await api.patch("/api/v1/things/acme:b/twin/desired", json={"x": 1})
            await eventually(lambda: b.desired())
            assert not any("acme:b" in t for t, _ in a.messages)
            twin = (await api.get("/api/v1/things/acme:b/twin")).json()
            assert twin["reported"] == {}
            rejected = await embedded.rejected(api)
            # Each refused SUBSCRIBE and PUBLISH counted once.
            assert rejected.get("acl_denied", 0) - before.get("acl_denied", 0) == 7, rejected
        finally:
            a.close()
            b.close()


async def test_desired_state_survives_a_restart_of_the_embedded_broker(embedded: Iotas) -> None:
    async with embedded.client() as api:
        secret = await embedded.register(api, "acme:dev-3")
        r = await api.patch("/api/v1/things/acme:dev-3/twin/desired", json={"sp": 9})
        version = r.json()["version"]
    embedded.stop()
    embedded.start()
    device = embedded.device("acme:dev-3", secret)
    try:
        device.client.subscribe("things/acme:dev-3/desired", qos=1)
        assert (await eventually(device.desired))[-1] == {"sp": 9, "$version": version}
    finally:
        device.close()


async def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = EmbeddedBroker(gate=None, port=port)  # type: ignore[arg-type]
        with pytest.raises(PortInUse, match=r"--mqtt-port.*--mqtt-url"):
            await broker.start()


async def test_revoking_a_credential_drops_the_live_connection(embedded: Iotas) -> None:
    async with embedded.client() as api:
        secret = await embedded.register(api, "acme:dev-9")
        device = embedded.device("acme:dev-9", secret)
        try:
            assert device.wait_connack() == 0
            device.send("reported", b'{"fw": "1.0"}').wait_for_publish(5)
            listed = (await api.get("/api/v1/things/acme:dev-9/credentials")).json()["items"]
            revoked = await api.delete(f"/api/v1/things/acme:dev-9/credentials/{listed[0]['id']}")
            assert revoked.status_code == 204

            async def gone() -> bool:
                thing = (await api.get("/api/v1/things/acme:dev-9")).json()
                return not device.client.is_connected() and thing["connected"] is False

            # Out within 5 s (here: at once), its last will published, and not back in.
            await eventually(gone, timeout=5)
        finally:
            device.close(clean=False)
        again = Device(embedded.mqtt, "acme:dev-9", secret)
        try:
            assert again.wait_connack() != 0
        finally:
            again.close(clean=False)


async def test_a_refused_login_does_not_touch_the_session_it_names(embedded: Iotas) -> None:
    """A CONNECT with a Thing's client id and a wrong secret is refused before the broker
    looks at that Thing's session: the device stays connected and subscribed."""
    async with embedded.client() as api:
        secret = await embedded.register(api, "acme:held")
        device = embedded.device("acme:held", secret)
        try:
            device.client.subscribe(device.topic("desired"), qos=1)
            await eventually(lambda: device.suback)
            for clean in (True, False):
                impostor = Device(
                    embedded.mqtt, "acme:held", "wrong-secret", clean_session=clean, will=False
                )
                try:
                    assert impostor.wait_connack() != 0
                finally:
                    impostor.close(clean=False)
            await asyncio.sleep(0.5)
            assert device.client.is_connected()
            # Still subscribed: a desired change reaches it.
            await api.patch("/api/v1/things/acme:held/twin/desired", json={"mode": "eco"})
            await eventually(
                lambda: (
                    {"mode": "eco"}
                    in [{k: v for k, v in d.items() if k != "$version"} for d in device.desired()]
                )
            )
            assert (await api.get("/api/v1/things/acme:held")).json()["connected"] is True
        finally:
            device.close()
