"""MQTT forms: subscribe to a topic for observations and events, publish for writes and
invocations. A connection per stream (Things are on their own brokers), MQTT 3.1.1, clean."""

from __future__ import annotations

import asyncio
import secrets as random_ids
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlsplit

import gmqtt
import orjson

from iotas.adapters.wot.errors import BadThingResponse, ThingUnreachable
from iotas.adapters.wot.http_forms import decode
from iotas.domain.td_model import Form

PORTS = {"mqtt": 1883, "mqtts": 8883}


def _target(form: Form) -> tuple[str, int, bool, str]:
    parts = urlsplit(form.href)
    topic = form.extra.get("mqv:topic") or unquote(parts.path.lstrip("/"))
    if not parts.hostname or not topic:
        raise BadThingResponse(f"the MQTT form {form.href!r} names no broker or topic")
    return parts.hostname, parts.port or PORTS[parts.scheme], parts.scheme == "mqtts", topic


async def _connect(host: str, port: int, tls: bool, secrets: Any, within: float) -> Any:
    client = gmqtt.Client(f"iotas-wot-{random_ids.token_hex(6)}", clean_session=True)
    if secrets is not None and secrets.username:
        client.set_auth_credentials(secrets.username, secrets.password)
    try:
        async with asyncio.timeout(within):
            await client.connect(host, port, ssl=tls, version=gmqtt.constants.MQTTv311)
    except (TimeoutError, OSError, gmqtt.mqtt.handler.MQTTConnectError) as exc:
        raise ThingUnreachable(f"MQTT broker {host}:{port}: {exc or 'no answer'}") from None
    return client


class MqttForms:
    def __init__(self, *, timeout: float, max_bytes: int) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes

    async def publish(self, form: Form, value: Any, secrets: Any) -> None:
        host, port, tls, topic = _target(form)
        client = await _connect(host, port, tls, secrets, self.timeout)
        try:
            qos = int(form.extra.get("mqv:qos", 1))
            client.publish(topic, orjson.dumps(value), qos=min(max(qos, 0), 1))
            await asyncio.sleep(0)  # let the packet go before DISCONNECT
        finally:
            await client.disconnect()

    async def subscribe(self, form: Form, secrets: Any) -> AsyncIterator[Any]:
        host, port, tls, topic = _target(form)
        client = await _connect(host, port, tls, secrets, self.timeout)
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1000)

        def on_message(_client: Any, _topic: str, payload: bytes, _qos: int, _props: Any) -> int:
            if not queue.full():  # a Thing that floods loses its oldest news, not our memory
                queue.put_nowait(payload)
            return 0

        client.on_message = on_message
        client.subscribe(topic, qos=1)
        try:
            while True:
                payload = await queue.get()
                if len(payload) > self.max_bytes:
                    raise BadThingResponse(f"{form.href} sent more than {self.max_bytes} bytes")
                yield decode(payload, form.content_type, f"MQTT {topic}")
        finally:
            await client.disconnect()
