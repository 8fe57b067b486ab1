"""The WoT client over CoAP (a real aiocoap server on 127.0.0.1) and MQTT (the Mosquitto at
127.0.0.1:1883): reads, writes, actions, observation, and the bounds of each."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import aiocoap
import aiocoap.resource as resource
import gmqtt
import orjson
import pytest

from integration.wot_client.things_support import TIMEOUT, closing, form, interactions
from iotas.adapters.wot.client import WotClient
from iotas.adapters.wot.errors import (
    BadThingResponse,
    NoUsableForm,
    ThingRefused,
    ThingUnreachable,
)
from iotas.domain import td_model as ops
from iotas.domain.td_model import SecurityScheme
from support import free_port

R, W, OBS = ops.READ_PROPERTY, ops.WRITE_PROPERTY, ops.OBSERVE_PROPERTY


class Level(resource.ObservableResource):
    def __init__(self) -> None:
        super().__init__()
        self.value: Any = 1

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(payload=orjson.dumps(self.value), content_format=50)

    async def render_put(self, request: aiocoap.Message) -> aiocoap.Message:
        self.value = orjson.loads(request.payload)
        self.updated_state()
        return aiocoap.Message(code=aiocoap.CHANGED)


class Toggle(resource.Resource):
    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        got = orjson.loads(request.payload)
        return aiocoap.Message(payload=orjson.dumps({"got": got}), content_format=50)


class Big(resource.Resource):
    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(payload=b'"' + b"x" * 20_000 + b'"', content_format=50)


class Silent(resource.Resource):
    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


@pytest.fixture
async def coap() -> AsyncIterator[tuple[str, Level]]:
    level = Level()
    site = resource.Site()
    site.add_resource(["level"], level)
    site.add_resource(["toggle"], Toggle())
    site.add_resource(["big"], Big())
    site.add_resource(["silent"], Silent())
    port = free_port()
    context = await aiocoap.Context.create_server_context(site, bind=("127.0.0.1", port))
    try:
        yield f"coap://127.0.0.1:{port}", level
    finally:
        await context.shutdown()


async def test_coap_read_write_invoke(client: WotClient, coap: tuple[str, Level]) -> None:
    base, level = coap
    things = interactions(
        properties={"level": (form(f"{base}/level", R, W),)},
        actions={"toggle": (form(f"{base}/toggle", ops.INVOKE_ACTION),)},
    )
    assert await client.read_property(things, "level") == 1
    await client.write_property(things, "level", 9)
    assert level.value == 9
    assert await client.invoke_action(things, "toggle") == {"got": None}
    missing = interactions(properties={"p": (form(f"{base}/nothing", R),)})
    with pytest.raises(ThingRefused, match=r"answered 4\.04 Not Found") as caught:
        await client.read_property(missing, "p")
    assert caught.value.status == "4.04"


async def test_coap_blockwise_answer_stops_at_the_cap(
    client: WotClient, coap: tuple[str, Level]
) -> None:
    base, _ = coap
    things = interactions(properties={"p": (form(f"{base}/big", R),)})
    with pytest.raises(BadThingResponse, match="more than the 4096 bytes"):
        await client.read_property(things, "p")
    roomy = WotClient(timeout=TIMEOUT, max_response_bytes=100_000)
    try:
        assert await roomy.read_property(things, "p") == "x" * 20_000  # assembled from blocks
    finally:
        await roomy.aclose()


async def test_coap_silence_is_bounded(client: WotClient, coap: tuple[str, Level]) -> None:
    base, _ = coap
    for href in (f"{base}/silent", f"coap://127.0.0.1:{free_port()}/level"):
        things = interactions(properties={"p": (form(href, R),)})
        started = time.monotonic()
        with pytest.raises(ThingUnreachable):
            await client.read_property(things, "p")
        assert time.monotonic() - started < TIMEOUT + 1


async def test_coap_observe(client: WotClient, coap: tuple[str, Level]) -> None:
    base, level = coap
    things = interactions(properties={"level": (form(f"{base}/level", R, W, OBS),)})
    stream = client.observe_property(things, "level")
    async with closing(stream), asyncio.timeout(5):
        assert await anext(stream) == 1  # the current value first
        await client.write_property(things, "level", 4)
        assert await anext(stream) == 4
        level.value = 5
        level.updated_state()
        assert await anext(stream) == 5


async def test_coap_refuses_credentials_it_cannot_send(
    client: WotClient, coap: tuple[str, Level]
) -> None:
    base, _ = coap
    basic = SecurityScheme("basic_sc", "basic")
    things = interactions(
        properties={"p": (form(f"{base}/level", R),)}, security=("basic_sc",), definitions=(basic,)
    )
    with pytest.raises(NoUsableForm, match="over CoAP"):
        await client.read_property(things, "p")


# -- MQTT --------------------------------------------------------------------------------


async def publish(broker: str, topic: str, payload: bytes, retain: bool = False) -> None:
    peer = gmqtt.Client(f"wot-test-{secrets.token_hex(4)}")
    await peer.connect("127.0.0.1", 1883, version=gmqtt.constants.MQTTv311)
    peer.publish(topic, payload, qos=1, retain=retain)
    await asyncio.sleep(0.1)
    await peer.disconnect()


async def publish_until(
    received: asyncio.Future[Any], broker: str, topic: str, payload: bytes
) -> Any:
    """Publish (again) until the subscriber has it: when its subscription took effect at the
    broker is not something the test can see."""
    while not received.done():
        await publish(broker, topic, payload)
        await asyncio.wait({received}, timeout=0.5)
    return received.result()


async def test_mqtt_observe_and_events(client: WotClient, mosquitto: str) -> None:
    topic = f"iotas-test/wot/{secrets.token_hex(6)}"
    things = interactions(
        properties={
            "level": (form(f"{mosquitto}/{topic}/level", OBS, content_type="application/json"),)
        },
        events={
            "hot": (form(mosquitto, ops.SUBSCRIBE_EVENT, extra={"mqv:filter": f"{topic}/hot/#"}),)
        },
    )
    levels = client.observe_property(things, "level")
    events = client.subscribe_event(things, "hot")
    async with closing(levels), closing(events), asyncio.timeout(15):
        first = asyncio.ensure_future(anext(levels))
        hot = asyncio.ensure_future(anext(events))
        assert await publish_until(first, mosquitto, f"{topic}/level", b"3") == 3
        assert await publish_until(hot, mosquitto, f"{topic}/hot/room1", b'{"t": 80}') == {"t": 80}


async def test_mqtt_write_then_read_the_retained_value(client: WotClient, mosquitto: str) -> None:
    topic = f"iotas-test/wot/{secrets.token_hex(6)}/level"
    things = interactions(
        properties={
            "level": (form(f"{mosquitto}/{topic}", R, W, extra={"mqv:retain": True, "mqv:qos": 1}),)
        }
    )
    await client.write_property(things, "level", {"on": True})
    assert await client.read_property(things, "level") == {"on": True}
    await publish(mosquitto, topic, b"", retain=True)  # clear the retained message


async def test_mqtt_bounds(client: WotClient, mosquitto: str) -> None:
    quiet = interactions(
        properties={"p": (form(f"{mosquitto}/iotas-test/wot/{secrets.token_hex(6)}", R),)}
    )
    started = time.monotonic()
    with pytest.raises(ThingUnreachable, match="no value was published"):
        await client.read_property(quiet, "p")
    assert time.monotonic() - started < TIMEOUT + 1
    gone = interactions(properties={"p": (form(f"mqtt://127.0.0.1:{free_port()}/t", R, W),)})
    started = time.monotonic()
    with pytest.raises(ThingUnreachable):
        await client.write_property(gone, "p", 1)
    assert time.monotonic() - started < TIMEOUT + 1
    basic = SecurityScheme("basic_sc", "basic")
    secured = interactions(
        properties={"p": (form(f"{mosquitto}/t", R),)}, security=("basic_sc",), definitions=(basic,)
    )
    with pytest.raises(NoUsableForm, match="give the Thing's credentials"):
        await client.read_property(secured, "p")
