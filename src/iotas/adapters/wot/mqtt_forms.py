"""MQTT forms (the WoT MQTT binding): subscribe for observations, events and reads (the
retained value), publish for writes and invocations. A Thing's broker is its own, so each
operation opens its own clean MQTT 3.1.1 connection, bounded like every other exchange."""

from __future__ import annotations

import asyncio
import secrets as random_ids
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlsplit

import gmqtt

from iotas.adapters.wot.errors import BadThingResponse, ThingRefused, ThingUnreachable
from iotas.adapters.wot.payloads import decode
from iotas.domain.td_model import Form

PORTS = {"mqtt": 1883, "mqtts": 8883}
QUEUE = 1000  # notifications kept for a slow consumer; a flood loses the newest, not our memory


class _Client(gmqtt.Client):  # type: ignore[misc]  # gmqtt is untyped
    async def reconnect(self, delay: bool = False) -> None:
        """gmqtt would reconnect by itself; a lost connection ends the stream instead, and the
        client's caller reopens it with backoff."""


class _Acks:
    """gmqtt's in-flight store, used only to learn when the PUBACK of a publish came."""

    def __init__(self) -> None:
        self.acked: dict[int, asyncio.Event] = {}

    def push_message(self, mid: int, raw_package: bytes) -> None:
        self.acked[mid] = asyncio.Event()

    def remove_message_by_mid(self, mid: int) -> None:
        if mid in self.acked:
            self.acked[mid].set()

    @property
    def is_empty(self) -> bool:
        return True

    async def wait_empty(self) -> None:
        return

    def clear(self) -> None:
        return

    def get_all(self) -> list[tuple[int, bytes]]:
        return []


def _target(form: Form, *, subscribe: bool) -> tuple[str, int, bool, str]:
    parts = urlsplit(form.href)
    topic = form.extra.get("mqv:topic")
    if subscribe:
        topic = form.extra.get("mqv:filter") or topic
    topic = topic or unquote(parts.path.lstrip("/"))
    if not parts.hostname or not isinstance(topic, str) or not topic:
        raise BadThingResponse(f"the MQTT form {form.href!r} names no broker or no topic")
    return parts.hostname, parts.port or PORTS[parts.scheme.lower()], parts.scheme == "mqtts", topic


class _Connection:
    def __init__(self, client: _Client, acks: _Acks, where: str) -> None:
        self.client = client
        self.acks = acks
        self.where = where
        self.lost = asyncio.Event()
        self.messages: asyncio.Queue[bytes] = asyncio.Queue(maxsize=QUEUE)
        self.subacks: dict[int, asyncio.Future[tuple[int, ...]]] = {}

    def abort(self) -> None:
        connection = self.client._connection  # gmqtt has no public way to drop a socket
        if connection is not None and connection._transport is not None:
            connection._transport.abort()

    async def close(self, within: float) -> None:
        try:
            async with asyncio.timeout(within):
                await self.client.disconnect()
        except Exception:  # a broker that will not say goodbye is simply dropped
            self.abort()
        except asyncio.CancelledError:
            self.abort()
            raise


class MqttForms:
    def __init__(self, *, timeout: float, max_bytes: int) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes

    async def _connect(
        self, host: str, port: int, tls: bool, credentials: tuple[str, str] | None, where: str
    ) -> _Connection:
        acks = _Acks()
        client = _Client(
            f"iotas-wot-{random_ids.token_hex(6)}", clean_session=True, persistent_storage=acks
        )
        if credentials is not None:
            client.set_auth_credentials(*credentials)
        link = _Connection(client, acks, where)

        def on_message(_c: Any, _topic: str, payload: bytes, _qos: int, _props: Any) -> int:
            if not link.messages.full():
                link.messages.put_nowait(payload)
            return 0

        def on_subscribe(_c: Any, mid: int, granted: tuple[int, ...], _props: Any) -> None:
            waiter = link.subacks.pop(mid, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(tuple(granted))

        client.on_message = on_message
        client.on_subscribe = on_subscribe
        client.on_disconnect = lambda *_args: link.lost.set()
        try:
            async with asyncio.timeout(self.timeout):
                await client.connect(
                    host, port, ssl=tls, keepalive=60, version=gmqtt.constants.MQTTv311
                )
        except gmqtt.MQTTConnectError as exc:
            link.abort()
            code = getattr(exc, "_code", "?")
            raise ThingRefused(
                f"{where}: the broker refused the connection ({exc}); check the Thing's "
                "credentials",
                status=code,
            ) from None
        except TimeoutError:
            link.abort()
            raise ThingUnreachable(
                f"{where}: the broker did not answer within {self.timeout:g} s"
            ) from None
        except OSError as exc:
            link.abort()
            raise ThingUnreachable(f"{where}: {exc}") from None
        except BaseException:
            link.abort()
            raise
        return link

    async def publish(
        self, form: Form, payload: bytes, credentials: tuple[str, str] | None
    ) -> None:
        """Publish once and, at QoS 1, wait for the broker's acknowledgement."""
        host, port, tls, topic = _target(form, subscribe=False)
        where = f"MQTT publish to {topic!r} at {host}:{port}"
        qos = 1 if str(form.extra.get("mqv:qos", "0")) in ("1", "2") else 0
        retain = form.extra.get("mqv:retain") is True
        try:
            async with asyncio.timeout(self.timeout):
                link = await self._connect(host, port, tls, credentials, where)
                try:
                    link.client.publish(topic, payload, qos=qos, retain=retain)
                    if qos:
                        (ack,) = link.acks.acked.values()  # one publish per connection
                        await _first(link, ack.wait(), where)
                finally:
                    await link.close(self.timeout)
        except TimeoutError:
            raise ThingUnreachable(
                f"{where}: the broker did not acknowledge within {self.timeout:g} s"
            ) from None

    async def read(self, form: Form, credentials: tuple[str, str] | None) -> Any:
        """The value on the form's topic: the retained one, or the first published within the
        deadline."""
        host, port, tls, topic = _target(form, subscribe=True)
        where = f"MQTT {topic!r} at {host}:{port}"
        try:
            async with asyncio.timeout(self.timeout):
                link = await self._connect(host, port, tls, credentials, where)
                try:
                    await self._subscribe(link, topic)
                    payload = await _first(link, link.messages.get(), where)
                finally:
                    await link.close(self.timeout)
        except TimeoutError:
            raise ThingUnreachable(
                f"{where}: no value was published (nor retained) within {self.timeout:g} s"
            ) from None
        return self._decode(form, payload, where)

    async def subscribe(
        self, form: Form, credentials: tuple[str, str] | None
    ) -> AsyncIterator[Any]:
        host, port, tls, topic = _target(form, subscribe=True)
        where = f"MQTT {topic!r} at {host}:{port}"
        try:
            async with asyncio.timeout(self.timeout):
                link = await self._connect(host, port, tls, credentials, where)
                try:
                    await self._subscribe(link, topic)
                except BaseException:
                    await link.close(self.timeout)
                    raise
        except TimeoutError:
            raise ThingUnreachable(
                f"{where}: the broker did not answer within {self.timeout:g} s"
            ) from None
        try:
            while True:
                payload = await _first(link, link.messages.get(), where)
                yield self._decode(form, payload, where)
        finally:
            await link.close(self.timeout)

    async def _subscribe(self, link: _Connection, topic: str) -> None:
        waiter: asyncio.Future[tuple[int, ...]] = asyncio.get_running_loop().create_future()
        mid = link.client.subscribe(topic, qos=1)
        link.subacks[mid] = waiter
        granted = await _first(link, waiter, link.where)
        if not granted or any(q >= 128 for q in granted):
            raise ThingRefused(f"{link.where}: the broker refused the subscription", status=128)

    def _decode(self, form: Form, payload: bytes, where: str) -> Any:
        if len(payload) > self.max_bytes:
            raise BadThingResponse(f"{where} sent more than the {self.max_bytes} bytes iotas reads")
        return decode(payload, form.content_type, None, where)


async def _first(link: _Connection, waitable: Any, where: str) -> Any:
    """What `waitable` gives, unless the connection is lost first."""
    wanted: asyncio.Future[Any] = asyncio.ensure_future(waitable)
    lost = asyncio.ensure_future(link.lost.wait())
    try:
        await asyncio.wait({wanted, lost}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        lost.cancel()
        if not wanted.done():
            wanted.cancel()
    if wanted.done() and not wanted.cancelled():
        return wanted.result()
    raise ThingUnreachable(f"{where}: the connection to the broker was lost")
