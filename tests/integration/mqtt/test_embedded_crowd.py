"""Many devices connecting to the embedded broker at the same moment, each with retained
desired state (a Wi-Fi password among it), in two namespaces: no device receives a topic that
is not its own, none is dropped, and the broker logs no error. gmqtt plays the devices."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import pytest

from integration.mqtt.crowd import (
    CrowdDevice,
    Member,
    connect_all,
    disconnect_all,
    late_for_own_desired,
    register_fleet,
    wait_own_desired,
)
from integration.mqtt.mqtt_support import Iotas, eventually, ns

PER_NAMESPACE = 250  # two namespaces: 500 devices
# Generous: the machine is shared; measured, 500 devices connect in a few seconds.
SETTLE = 120.0
ERRORS = re.compile(r"Traceback|\bERROR\b|\bCRITICAL\b")


@pytest.fixture(scope="module")
def crowd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Iotas, list[Member]]]:
    """One iotas (embedded broker) and its fleet, registered once for the module's tests."""
    node = Iotas("embedded", tmp_path_factory.mktemp("crowd"))
    node.start()

    async def register() -> list[Member]:
        async with node.client() as api:
            return await register_fleet(api, [ns(), ns()], PER_NAMESPACE, secrets=True)

    try:
        fleet = asyncio.run(register())
        yield node, fleet
    finally:
        node.stop()


def _sample(fleet: list[Member], n: int) -> list[Member]:
    """`n` members, half from each namespace."""
    half = n // 2
    return fleet[:half] + fleet[PER_NAMESPACE : PER_NAMESPACE + n - half]


async def _not_connected(node: Iotas, devices: list[CrowdDevice]) -> set[str]:
    """Of these devices' Things, those iotas does not show as connected."""
    wanted = {d.thing_id for d in devices}
    shown = set()
    async with node.client() as api:
        for namespace in {t.split(":")[0] for t in wanted}:
            page = await api.get(
                "/api/v1/things", params={"q": f'namespace == "{namespace}"', "limit": 1000}
            )
            shown |= {t["id"] for t in page.json()["items"] if t["connected"] is True}
    return wanted - shown


@pytest.mark.parametrize("n", [60, 500])
async def test_no_device_receives_another_devices_topics(
    crowd: tuple[Iotas, list[Member]], n: int
) -> None:
    node, fleet = crowd
    devices = await connect_all(node.mqtt, _sample(fleet, n))
    try:
        late = await late_for_own_desired(devices, SETTLE)
        leaks = {d.thing_id: d.foreign() for d in devices if d.foreign()}
        leaked_secrets = sum(
            b"wifi_password" in p
            for d in devices
            for t, p in d.received
            if not t.startswith(f"things/{d.thing_id}/")
        )
        assert not leaks, (
            f"{len(leaks)} of {n} devices received others' topics "
            f"({leaked_secrets} Wi-Fi passwords), e.g. {next(iter(leaks.items()))}"
        )
        assert not late, f"{len(late)} devices never got their own desired state"
    finally:
        await disconnect_all(devices)


async def test_500_devices_connecting_at_once_all_stay_connected(
    crowd: tuple[Iotas, list[Member]],
) -> None:
    node, fleet = crowd
    logged = len(node.log())
    started = time.monotonic()
    devices = await connect_all(node.mqtt, fleet)
    try:
        await wait_own_desired(devices, SETTLE)
        took = time.monotonic() - started
        assert took < SETTLE, took
        dropped = {d.thing_id: d.drops for d in devices if d.drops or not d.client.is_connected}
        assert not dropped, f"{len(dropped)} devices dropped: {list(dropped.items())[:5]}"

        # Presence is recorded as the broker reports each connection: wait for all of it.
        async def all_shown_connected() -> bool:
            return not await _not_connected(node, devices)

        await eventually(all_shown_connected, timeout=SETTLE, interval=0.5)
    finally:
        await disconnect_all(devices)
    errors = [line for line in node.log()[logged:].splitlines() if ERRORS.search(line)]
    assert not errors, "\n".join(errors[:20])
