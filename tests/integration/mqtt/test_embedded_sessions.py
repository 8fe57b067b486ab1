"""Sessions on the embedded broker as MQTT 3.1.1 says: a second connection with the same client
id takes the session over (the first connection is closed, the Thing stays connected), and a
persistent session (clean_session=false) resumes with `session_present` and the QoS 1
messages sent to it while the device was away. paho-mqtt plays the devices."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from integration.mqtt.mqtt_support import Device, Iotas, eventually

WAIT = 15.0


def _states(device: Device) -> list[dict[str, Any]]:
    return [{k: v for k, v in d.items() if k != "$version"} for d in device.desired()]


async def _connected(api: httpx.AsyncClient, thing_id: str) -> bool:
    thing = (await api.get(f"/api/v1/things/{thing_id}")).json()
    return thing["connected"] is True


@pytest.mark.parametrize("clean", [True, False])
async def test_a_second_connection_with_the_same_client_id_takes_over(
    embedded: Iotas, clean: bool
) -> None:
    thing = f"acme:twice-{'clean' if clean else 'kept'}"
    async with embedded.client() as api:
        secret = await embedded.register(api, thing)
        first = embedded.device(thing, secret, clean_session=clean, reconnect=False)
        second = None
        try:
            first.client.subscribe(first.topic("desired"), qos=1)
            await eventually(lambda: first.suback)
            await eventually(lambda: _connected(api, thing))
            second = embedded.device(thing, secret, clean_session=clean, reconnect=False)
            # The broker closes the first connection.
            await eventually(first.disconnected.is_set, timeout=WAIT)
            assert second.session_present is (not clean)
            if clean:
                second.client.subscribe(second.topic("desired"), qos=1)
                await eventually(lambda: second is not None and second.suback)
            await api.patch(f"/api/v1/things/{thing}/twin/desired", json={"round": 1})
            await eventually(lambda: second is not None and {"round": 1} in _states(second))
            assert second.client.is_connected() and not second.disconnected.is_set()
            assert {"round": 1} not in _states(first)
            # The Thing is connected: the first connection's end is not its disconnection.
            assert await _connected(api, thing)
        finally:
            first.close(clean=False)
            if second is not None:
                second.close()


async def test_a_persistent_session_resumes_with_what_was_sent_while_away(
    embedded: Iotas,
) -> None:
    thing, marker = "acme:away", "acme:zz-away-marker"  # the marker's id sorts after
    async with embedded.client() as api:
        secret = await embedded.register(api, thing)
        marker_secret = await embedded.register(api, marker)
        device = embedded.device(thing, secret, clean_session=False, reconnect=False)
        watcher = embedded.device(marker, marker_secret)
        try:
            device.client.subscribe(device.topic("desired"), qos=1)
            watcher.client.subscribe(watcher.topic("desired"), qos=1)
            await eventually(lambda: device.suback and watcher.suback)
            await api.patch(f"/api/v1/things/{thing}/twin/desired", json={"v": 1})
            await eventually(lambda: {"v": 1} in _states(device))
            device.close()  # a clean DISCONNECT: the session stays, with its subscription

            async def gone() -> bool:
                return not await _connected(api, thing)

            await eventually(gone, timeout=WAIT)
            for v in (2, 3):
                await api.patch(f"/api/v1/things/{thing}/twin/desired", json={"v": v})
            # iotas publishes desired states in order: once the marker's change (made after)
            # has arrived, those for the absent device were published before it returned.
            await api.patch(f"/api/v1/things/{marker}/twin/desired", json={"after": True})
            await eventually(lambda: {"after": True} in _states(watcher))

            back = embedded.device(thing, secret, clean_session=False, reconnect=False)
            try:
                assert back.session_present is True
                # Not subscribed again: what arrives was queued in the session.
                await eventually(lambda: {"v": 3} in _states(back), timeout=WAIT)
                # (Desired state is state: changes close together may arrive as one.)
                assert {s["v"] for s in _states(back)} <= {2, 3}
            finally:
                back.close()
        finally:
            device.close(clean=False)
            watcher.close()


async def test_a_persistent_session_gets_again_what_its_vanished_connection_never_acked(
    embedded: Iotas,
) -> None:
    """The device vanishes (its connection stays open but nothing is read, as when a network
    path dies), a desired change is sent to that connection and never acknowledged, then the
    device comes back and takes its session over: the change arrives again (MQTT 3.1.1,
    4.4: unacknowledged QoS 1 messages are sent again when a session resumes)."""
    thing, marker = "acme:vanish", "acme:zz-vanish-marker"
    async with embedded.client() as api:
        secret = await embedded.register(api, thing)
        marker_secret = await embedded.register(api, marker)
        device = embedded.device(thing, secret, clean_session=False, reconnect=False)
        watcher = embedded.device(marker, marker_secret)
        try:
            device.client.subscribe(device.topic("desired"), qos=1)
            watcher.client.subscribe(watcher.topic("desired"), qos=1)
            await eventually(lambda: device.suback and watcher.suback)
            device.client.loop_stop()  # gone silent; its socket stays open
            await api.patch(f"/api/v1/things/{thing}/twin/desired", json={"v": "unacked"})
            await api.patch(f"/api/v1/things/{marker}/twin/desired", json={"after": True})
            await eventually(lambda: {"after": True} in _states(watcher))

            back = embedded.device(thing, secret, clean_session=False, reconnect=False)
            try:
                assert back.session_present is True
                await eventually(lambda: {"v": "unacked"} in _states(back), timeout=WAIT)
                assert await _connected(api, thing)
            finally:
                back.close()
        finally:
            device.close(clean=False)
            watcher.close()
