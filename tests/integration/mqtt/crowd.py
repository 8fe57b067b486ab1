"""Many devices at once: registering a fleet with desired state over the API, and connecting
all of it at the same moment with gmqtt clients (one event loop, MQTT 3.1.1) that record every
message they receive and every time they are dropped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from gmqtt import Client
from gmqtt.mqtt.constants import MQTTv311

# Requests to iotas in flight at once while a fleet is registered.
AT_ONCE = 8


@dataclass
class Member:
    """A Thing of the fleet: its id, its secret (None: anonymous) and what it was sent."""

    thing_id: str
    secret: str | None
    desired: dict[str, Any]


async def _bounded(calls: Sequence[Callable[[], Awaitable[None]]]) -> None:
    turns = asyncio.Semaphore(AT_ONCE)

    async def run(call: Callable[[], Awaitable[None]]) -> None:
        async with turns:
            await call()

    await asyncio.gather(*(run(c) for c in calls))


async def register_fleet(
    api: httpx.AsyncClient,
    namespaces: Sequence[str],
    per_namespace: int,
    *,
    secrets: bool,
    desired: bool = True,
) -> list[Member]:
    """Things `<ns>:dev-<i>` in each namespace, each with a desired state of its own (a Wi-Fi
    password among it; set now unless `desired` is False) and, with `secrets`, a password
    credential."""
    fleet = [
        Member(
            f"{ns}:dev-{i}",
            None,
            {"wifi_password": f"secret-of-{ns}-{i}", "setpoint": i},
        )
        for ns in namespaces
        for i in range(per_namespace)
    ]

    async def create(member: Member) -> None:
        r = await api.post("/api/v1/things", json={"id": member.thing_id, "kind": "sensor"})
        assert r.status_code == 201, r.text
        if secrets:
            r = await api.post(
                f"/api/v1/things/{member.thing_id}/credentials", json={"type": "password"}
            )
            assert r.status_code == 201, r.text
            member.secret = r.json()["secret"]
        if desired:
            await _set_desired(api, member)

    await _bounded([lambda m=m: create(m) for m in fleet])  # type: ignore[misc]
    return fleet


async def set_desired(api: httpx.AsyncClient, fleet: Sequence[Member]) -> None:
    await _bounded([lambda m=m: _set_desired(api, m) for m in fleet])  # type: ignore[misc]


async def _set_desired(api: httpx.AsyncClient, member: Member) -> None:
    r = await api.patch(f"/api/v1/things/{member.thing_id}/twin/desired", json=member.desired)
    assert r.status_code == 200, r.text


@dataclass
class CrowdDevice:
    """One gmqtt client: everything it received, and each time it lost its connection."""

    member: Member
    client: Client
    received: list[tuple[str, bytes]] = field(default_factory=list)
    drops: int = 0
    own_desired: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def thing_id(self) -> str:
        return self.member.thing_id

    def foreign(self) -> list[str]:
        """Topics received that are not this device's own."""
        own = f"things/{self.thing_id}/"
        return [t for t, _ in self.received if not t.startswith(own)]


def _device(member: Member) -> CrowdDevice:
    client = Client(member.thing_id, clean_session=True)
    client.set_config({"reconnect_retries": 0})
    if member.secret is not None:
        client.set_auth_credentials(member.thing_id, member.secret)
    device = CrowdDevice(member, client)
    own = f"things/{member.thing_id}/desired"

    def on_message(_c: Any, topic: str, payload: bytes, _qos: int, _p: Any) -> int:
        device.received.append((topic, payload))
        if topic == own and payload:
            desired = orjson.loads(payload)
            if {k: desired.get(k) for k in member.desired} == member.desired:
                device.own_desired.set()
        return 0

    def on_disconnect(_c: Any, _packet: Any, _exc: Any = None) -> None:
        device.drops += 1

    client.on_message = on_message
    client.on_disconnect = on_disconnect
    return device


async def connect_all(address: tuple[str, int], fleet: Sequence[Member]) -> list[CrowdDevice]:
    """Connect every member at the same moment, subscribing to nothing; once connected, each
    subscribes to its own desired state. Raises if any CONNECT fails."""
    devices = [_device(m) for m in fleet]

    async def connect(device: CrowdDevice) -> None:
        await device.client.connect(*address, keepalive=60, version=MQTTv311)
        # After the connect: whatever the broker replays at connect time is on the wire
        # before this SUBSCRIBE's answer, so the device's own desired state is the barrier.
        device.client.subscribe(f"things/{device.thing_id}/desired", qos=1)

    await asyncio.gather(*(connect(d) for d in devices))
    return devices


async def late_for_own_desired(devices: Sequence[CrowdDevice], timeout: float) -> list[str]:
    """Wait up to `timeout` for every device's own desired state; the ids still without."""
    missing = [d for d in devices if not d.own_desired.is_set()]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(
            asyncio.gather(*(d.own_desired.wait() for d in missing)), timeout=timeout
        )
    return [d.thing_id for d in devices if not d.own_desired.is_set()]


async def wait_own_desired(devices: Sequence[CrowdDevice], timeout: float) -> None:
    late = await late_for_own_desired(devices, timeout)
    assert not late, f"{len(late)} devices never got their own desired state: {late[:5]}"


async def disconnect_all(devices: Sequence[CrowdDevice]) -> None:
    async def close(device: CrowdDevice) -> None:
        if device.client.is_connected:
            await device.client.disconnect()

    await asyncio.gather(*(close(d) for d in devices), return_exceptions=True)
