"""Invocations delivered to MQTT devices over the embedded broker and Mosquitto: iotas in this
process (the real API over loopback), devices on the device SDK or paho.

- a device offline when invoked gets its invocations on reconnect, in order, and they end
  succeeded; one whose ttl passed while it was away ends expired and never reaches it;
- a device that drops before answering gets the invocation again (one more attempt);
- many devices at once each get only their own; a hostile device gets nothing of others'
  and its results for another Thing are refused and counted; malformed results are counted.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from integration.mqtt.mqtt_support import MOSQUITTO, eventually, require_mosquitto
from integration.mqtt.mqtt_support import Device as Paho
from integration.mqtt.test_device_sdk import FAST
from iotas.domain import clock
from iotas.domain.invocations import FINAL, Invocation, Status
from iotas.runtime.node import Runtime
from iotas.sdk import Device
from iotas.services.context import Actor, Context
from iotas.sim.actions import MODEL as SIM_MODEL
from iotas.sim.actions import ActionBehaviour, answer_actions
from support import free_port, live_server

MODEL: dict[str, Any] = {
    "actions": {
        "step": {"input": {"type": "object", "properties": {"n": {"type": "integer"}}}},
        "hold": {},
    }
}
OPERATOR = Context(Actor("test", role="admin"), "test")


@dataclass
class Node:
    transport: str
    api: httpx.AsyncClient
    rt: Runtime
    mqtt_url: str
    address: tuple[str, int]

    @property
    def embedded(self) -> bool:
        return self.transport == "embedded"

    async def thing(self, thing_id: str) -> str | None:
        """A Thing with the actions of MODEL; on the embedded broker a secret for it."""
        created = await self.api.post(
            "/api/v1/things", json={"id": thing_id, "kind": "sensor", "description": MODEL}
        )
        assert created.status_code == 201, created.text
        if not self.embedded:
            return None
        cred = await self.api.post(
            f"/api/v1/things/{thing_id}/credentials", json={"type": "password"}
        )
        assert cred.status_code == 201, cred.text
        secret: str = cred.json()["secret"]
        return secret

    async def invoke(
        self, thing_id: str, action: str, value: Any = None, ttl: float | None = None
    ) -> Invocation:
        return await self.rt.invocations.create(OPERATOR, thing_id, action, value, ttl_s=ttl)

    async def ended(self, invocation_id: str) -> Invocation:
        async def final() -> Invocation | None:
            found = await self.rt.invocations.get(invocation_id)
            return found if found.status in FINAL else None

        ended: Invocation = await eventually(final, timeout=20)
        return ended

    async def rejected(self) -> dict[str, int]:
        stats = (await self.api.get("/api/v1/stats")).json()["ingest"]["rejected"]
        return dict(stats)


@pytest.fixture(params=["embedded", pytest.param("mosquitto", marks=pytest.mark.mosquitto)])
async def node(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Node]:
    transport = str(request.param)
    if transport == "embedded":
        port = free_port()
        overrides: dict[str, Any] = {"mqtt_port": port}
        address = ("127.0.0.1", port)
    else:
        require_mosquitto()
        overrides = {
            "mqtt_url": f"mqtt://{MOSQUITTO[0]}:{MOSQUITTO[1]}",
            "mqtt_client_id": "iotas-test-" + secrets.token_hex(4),
            "mqtt_session_expiry": 60,
        }
        address = MOSQUITTO
    url = f"sqlite:///{tmp_path / 'iotas.db'}"
    async with live_server(url, tmp_path / "data", **overrides) as (live, app):
        yield Node(
            transport, live.client, app.state.runtime, f"mqtt://{address[0]}:{address[1]}", address
        )


def ns() -> str:
    return "t" + secrets.token_hex(4)


async def test_an_offline_device_gets_its_invocations_in_order_when_back(node: Node) -> None:
    thing_id = f"{ns()}:dev-1"
    secret = await node.thing(thing_id)
    late = await node.invoke(thing_id, "step", {"n": 0}, ttl=1)
    await eventually(lambda: clock.now_us() > late.expires_us)  # passes while it is away
    queued = [await node.invoke(thing_id, "step", {"n": n}) for n in (1, 2, 3)]
    assert all(i.status == Status.QUEUED for i in queued)

    seen: list[int] = []
    device = Device(thing_id, secret, url=node.mqtt_url, **FAST)

    @device.on_action("step")
    async def step(value: Any, progress: Any) -> Any:
        seen.append(value["n"])
        return {"did": value["n"]}

    async with device:
        ended = [await node.ended(i.id) for i in queued]
    assert [i.status for i in ended] == [Status.SUCCEEDED] * 3
    assert [i.output for i in ended] == [{"did": 1}, {"did": 2}, {"did": 3}]
    assert seen == [1, 2, 3]  # in creation order, and never the expired one
    assert (await node.rt.invocations.get(late.id)).status in (Status.QUEUED, Status.EXPIRED)
    await node.rt.invocations.expire_due(late.expires_us + 1)
    assert (await node.rt.invocations.get(late.id)).status == Status.EXPIRED


async def test_a_device_that_drops_before_answering_gets_it_again(node: Node) -> None:
    thing_id = f"{ns()}:dev-1"
    secret = await node.thing(thing_id)
    # First a device that takes the invocation (PUBACK) and vanishes without a word.
    mute = Paho(node.address, thing_id, secret)
    assert await asyncio.to_thread(mute.wait_connack) == 0
    mute.client.subscribe(f"things/{thing_id}/actions/+/+", qos=1)
    await eventually(lambda: mute.suback)
    if not node.embedded:  # on Mosquitto iotas learns of a connection from its presence
        await _sent(mute.send("presence", "online", retain=True))
    invocation = await node.invoke(thing_id, "hold")
    await eventually(lambda: any("/actions/hold/" in t for t, _ in mute.messages))
    delivered = await eventually(
        lambda: _status_is(node, invocation.id, Status.DELIVERED), timeout=10
    )
    assert delivered.attempts == 1
    await asyncio.to_thread(mute.close, clean=False)
    await eventually(lambda: _connected(node, thing_id, False))

    runs: list[Any] = []
    device = Device(thing_id, secret, url=node.mqtt_url, **FAST)

    @device.on_action("hold")
    async def hold(value: Any, progress: Any) -> Any:
        runs.append(value)
        return "held"

    async with device:
        ended = await node.ended(invocation.id)
        assert ended.status == Status.SUCCEEDED and ended.output == "held"
        # Sent again to the new connection (its `running` may come before the second
        # delivery is recorded, which then leaves `attempts` as it was).
        assert ended.attempts >= 1
        # Reconnecting after the end brings nothing again.
        device.drop_connection()
        await eventually(lambda: device.stats.reconnects >= 1 and device.connected)
        await eventually(lambda: _connected(node, thing_id, True))
    assert runs == [None]
    assert device.actions.stats.received == 1


async def test_many_devices_each_get_only_their_own_and_a_hostile_one_nothing(
    node: Node,
) -> None:
    space = ns()
    count = 200
    ids = [f"{space}:dev-{n}" for n in range(count)]
    secrets_ = await asyncio.gather(*(node.thing(t) for t in ids))
    hostile_id = f"{space}:hostile"
    hostile_secret = await node.thing(hostile_id)
    hostile = Paho(node.address, hostile_id, hostile_secret)
    assert await asyncio.to_thread(hostile.wait_connack) == 0
    hostile.client.subscribe([("things/+/actions/#", 1), (f"things/{ids[0]}/actions/+/+", 1)])
    await eventually(lambda: len(hostile.suback) == 2)

    got: dict[str, list[Any]] = {t: [] for t in ids}
    devices = [Device(t, s, url=node.mqtt_url, **FAST) for t, s in zip(ids, secrets_, strict=True)]
    for device in devices:
        device.on_action("step")(_recorder(got[device.thing_id]))
    try:
        await asyncio.gather(*(d.connect() for d in devices))
        await eventually(lambda: _all_connected(node, ids), timeout=30)
        made = [await node.invoke(t, "step", {"n": n}) for n, t in enumerate(ids)]
        for invocation in made:
            assert (await node.ended(invocation.id)).status == Status.SUCCEEDED
    finally:
        await asyncio.gather(*(d.close() for d in devices))
    assert got == {t: [{"n": n}] for n, t in enumerate(ids)}
    if node.embedded:  # Mosquitto here lets anyone in (its ACLs: test_mosquitto_config.py)
        assert not any("/actions/" in topic for topic, _ in hostile.messages)
        # A result for another Thing's invocation is refused at the broker's gate and counted.
        before = (await node.rejected()).get("acl_denied", 0)
        info = hostile.client.publish(
            f"things/{ids[0]}/actions/step/{made[0].id}/result", b'{"status": "failed"}', qos=1
        )
        await _sent(info)
        await eventually(lambda: _rejected_more(node, "acl_denied", before))
        assert (await node.rt.invocations.get(made[0].id)).status == Status.SUCCEEDED
    await asyncio.to_thread(hostile.close)


async def test_malformed_and_stray_results_are_counted_and_ignored(node: Node) -> None:
    thing_id = f"{ns()}:dev-1"
    other_id = f"{ns()}:dev-2"
    secret = await node.thing(thing_id)
    await node.thing(other_id)
    others = await node.invoke(other_id, "hold")
    device = Paho(node.address, thing_id, secret)
    assert await asyncio.to_thread(device.wait_connack) == 0
    before = await node.rejected()
    sends = {
        "bad_result": [b"not json", b"[1, 2]"],
        "invocation_result_malformed": [b'{"status": "done"}'],
        "invocation_unknown": [b'{"status": "succeeded"}'],
    }
    for reason, payloads in sends.items():
        for payload in payloads:
            inv = "inv-nope" if reason == "invocation_unknown" else others.id
            await _sent(device.send(f"actions/hold/{inv}/result", payload))
    # Its own topic, another Thing's invocation.
    await _sent(device.send(f"actions/hold/{others.id}/result", b'{"status": "succeeded"}'))
    # A result topic that is not one.
    await _sent(device.send("actions/hold", b"{}"))

    async def counted() -> bool:
        now = await node.rejected()
        return all(
            now.get(reason, 0) - before.get(reason, 0) >= len(payloads)
            for reason, payloads in sends.items()
        ) and now.get("invocation_other_thing", 0) > before.get("invocation_other_thing", 0)

    await eventually(counted)
    assert (await node.rt.invocations.get(others.id)).status == Status.QUEUED
    await asyncio.to_thread(device.close)


# -- helpers -----------------------------------------------------------------------------------


async def _sent(info: Any) -> None:
    """Wait (off the event loop, which runs the embedded broker) for a paho publish's PUBACK."""
    await asyncio.to_thread(info.wait_for_publish, 5)
    assert info.is_published()


def _recorder(into: list[Any]) -> Any:
    async def handler(value: Any, progress: Any) -> Any:
        into.append(value)
        return value

    return handler


async def _status_is(node: Node, invocation_id: str, status: Status) -> Invocation | None:
    found = await node.rt.invocations.get(invocation_id)
    return found if found.status == status else None


async def _connected(node: Node, thing_id: str, connected: bool) -> bool:
    return (await node.rt.registry.get(thing_id)).connected == connected


async def _all_connected(node: Node, ids: list[str]) -> bool:
    found = await node.rt.registry.get_many(ids)
    return all(t.connected for t in found.values()) and len(found) == len(ids)


async def _rejected_more(node: Node, reason: str, before: int) -> bool:
    return (await node.rejected()).get(reason, 0) > before


@pytest.mark.parametrize(
    "node", [pytest.param("mosquitto", marks=pytest.mark.mosquitto)], indirect=True
)  # the embedded broker speaks MQTT 3.1.1 only
async def test_an_mqtt5_device_answers_to_the_response_topic(node: Node) -> None:
    thing_id = f"{ns()}:dev-5"
    await node.thing(thing_id)
    got: list[paho.MQTTMessage] = []
    device = paho.Client(CallbackAPIVersion.VERSION2, client_id=thing_id, protocol=paho.MQTTv5)
    device.on_message = lambda _c, _u, m: got.append(m)
    device.connect(*node.address, keepalive=30)
    device.loop_start()
    try:
        device.subscribe(f"things/{thing_id}/actions/+/+", qos=1)
        online = device.publish(f"things/{thing_id}/presence", b"online", qos=1, retain=True)
        await _sent(online)
        made = await node.invoke(thing_id, "hold")
        await eventually(lambda: got)
        props: Any = got[0].properties  # paho sets its MQTT 5 properties as attributes
        assert props is not None
        assert props.ResponseTopic == f"things/{thing_id}/actions/hold/{made.id}/result"
        assert props.CorrelationData == made.id.encode()
        answer = device.publish(props.ResponseTopic, b'{"status": "succeeded", "output": 5}', qos=1)
        await _sent(answer)
        ended = await node.ended(made.id)
        assert (ended.status, ended.output) == (Status.SUCCEEDED, 5)
    finally:
        cleared = device.publish(f"things/{thing_id}/presence", b"", qos=1, retain=True)
        await _sent(cleared)
        device.disconnect()
        device.loop_stop()


async def test_a_simulated_device_answers_the_actions_of_its_model(node: Node) -> None:
    thing_id = f"{ns()}:sim-1"
    made = await node.api.post(
        "/api/v1/things", json={"id": thing_id, "kind": "pump", "description": SIM_MODEL}
    )
    assert made.status_code == 201, made.text  # the model is a description the registry takes
    secret = None
    if node.embedded:
        cred = await node.api.post(
            f"/api/v1/things/{thing_id}/credentials", json={"type": "password"}
        )
        secret = cred.json()["secret"]
    refused = await node.api.post(f"/api/v1/things/{thing_id}/actions/blink", json={"input": {}})
    assert refused.status_code == 400  # `times` is required by the model
    device = Device(thing_id, secret, url=node.mqtt_url, **FAST)
    answer_actions(device, ActionBehaviour(failure_rate=0.0, delay=0.01), random.Random(1))
    async with device:
        blink = await node.invoke(thing_id, "blink", {"times": 2})
        ping = await node.invoke(thing_id, "ping")
        assert (await node.ended(blink.id)).output == {"blinked": 2}
        assert (await node.ended(ping.id)).output == {"pong": True}
