"""The device SDK: a Thing speaking the iotas MQTT convention (docs/mqtt.md), on asyncio.

    async with Device("acme:pump-17", secret, url="mqtts://iot.example.com") as device:
        device.on_desired(apply)                  # full desired state incl. "$version"
        await device.telemetry({"temp": 21.5})    # returns once the broker acknowledged it
        await device.report({"speed": 1200})
        await device.event("overheat", {"temp": 96.0})

One `Device` keeps one MQTT connection (client id and user name: the Thing id, password: its
secret) and keeps it up: a dropped connection is reopened with exponential backoff and jitter,
and what is published meanwhile waits in a bounded in-memory queue (the oldest is dropped
first, and counted). QoS 1 messages left unacknowledged by a lost connection are sent again:
delivery is at least once. On every connect the device subscribes to its desired state and
publishes "online" (retained) on its presence topic; its last will is "offline" (retained),
so the broker tells everyone when the device vanishes without closing.

Built on gmqtt (the fastest Python MQTT client here, see docs/device-sdk.md), speaking MQTT
3.1.1, which every broker iotas supports speaks, the embedded one included.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import ssl
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, Self

import gmqtt
import orjson
from gmqtt.mqtt.constants import MQTTv311

from iotas.domain.ids import ID_RULE, THING_ID_RE
from iotas.sdk._actions import ActionError, ActionHandler, Actions, ActionStats
from iotas.sdk._mqtt import (
    REFUSALS,
    AckTracker,
    GmqttClient,
    Link,
    Outgoing,
    backoff_delay,
    parse_url,
)

__all__ = [
    "DEFAULT_URL",
    "ActionError",
    "ActionStats",
    "ConnectRefused",
    "ConnectTimeout",
    "Device",
    "DeviceClosed",
    "DeviceError",
    "DeviceStats",
    "MessageDropped",
    "backoff_delay",
    "parse_url",
]

_log = logging.getLogger(__name__)

DEFAULT_URL = "mqtt://127.0.0.1:1883"
ONLINE = b"online"
OFFLINE = b"offline"
REFUSAL_GRACE = 0.05
JSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z

Json = dict[str, Any]
DesiredCallback = Callable[[Json], object]


class DeviceError(Exception):
    """Base of the device SDK's errors."""


class ConnectRefused(DeviceError):
    """The broker refused the first connection for good (credentials, client id)."""

    def __init__(self, url: str, code: int) -> None:
        self.url = url
        self.code = code
        super().__init__(f"{url} refused the connection: {REFUSALS.get(code, f'code {code}')}")


class ConnectTimeout(DeviceError, TimeoutError):
    """No connection within `connect(give_up_after=...)`; the message names the last failure."""


class DeviceClosed(DeviceError):
    """The device was closed before the message could be delivered."""


class MessageDropped(DeviceError):
    """The offline queue was full and this (oldest) message made room for a newer one."""


@dataclass(slots=True)
class DeviceStats:
    """Counters of one device's traffic (of its own messages; presence is not counted)."""

    submitted: int = 0  # messages given to telemetry / report / event
    sent: int = 0  # PUBLISH packets written, resends included
    acked: int = 0  # QoS 1 messages acknowledged by the broker
    dropped: int = 0  # oldest messages dropped from a full queue
    resent: int = 0  # unacknowledged messages queued again after a lost connection
    connects: int = 0  # connections established
    reconnects: int = 0  # connections established after the first
    connect_failures: int = 0  # attempts that failed (refused, unreachable, timed out)
    desired_received: int = 0  # distinct desired documents received


@dataclass(slots=True)
class _Subscriber:
    callback: DesiredCallback
    seen: Json | None = None  # the last document it was given


class Device:
    """A Thing on the iotas MQTT convention. See the module docstring for the behaviour.

    `secret` may be None for a broker that lets anyone in, or when the device logs in with
    its certificate: `cert_file` and `key_file` (PEM) on an `mqtts://` URL, as iotas'
    MQTT-over-TLS listener (8883) expects. `ca_file` names the CA bundle that signed an
    `mqtts://` broker's certificate (iotas' own CA: `GET /api/v1/ca`; default: the
    system's). With
    `follow_desired=False` the device never subscribes (a transmit-only sensor).
    `queue_limit` bounds the messages waiting for a connection, `max_inflight` the QoS 1
    messages awaiting their PUBACK on one connection.
    """

    def __init__(
        self,
        thing_id: str,
        secret: str | None = None,
        *,
        url: str = DEFAULT_URL,
        keepalive: int = 30,
        ca_file: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        follow_desired: bool = True,
        queue_limit: int = 10_000,
        max_inflight: int = 100,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        connect_timeout: float = 10.0,
    ) -> None:
        if not THING_ID_RE.match(thing_id):
            raise ValueError(f"{thing_id!r} is not a valid Thing id: {ID_RULE}")
        if queue_limit < 1 or not 1 <= max_inflight <= 65_000:
            raise ValueError("queue_limit must be >= 1 and max_inflight within 1..65000")
        self.thing_id = thing_id
        self.url = url
        self._host, self._port, tls = parse_url(url)
        if (cert_file is None) != (key_file is None):
            raise ValueError("a client certificate needs both cert_file and key_file")
        if cert_file is not None and not tls:
            raise ValueError("a client certificate needs an mqtts:// URL")
        self._ssl: ssl.SSLContext | bool = False
        if tls:
            context = ssl.create_default_context(cafile=ca_file)
            if cert_file is not None and key_file is not None:
                context.load_cert_chain(cert_file, key_file)
            self._ssl = context
        self._secret = secret
        self._keepalive = keepalive
        self._follow_desired = follow_desired
        self._queue_limit = queue_limit
        self._max_inflight = max_inflight
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._connect_timeout = connect_timeout
        self._rng = random.Random()
        self._topics = {c: f"things/{thing_id}/{c}" for c in ("telemetry", "reported", "desired")}
        self._presence = f"things/{thing_id}/presence"

        self.desired: Json = {}
        self.stats = DeviceStats()
        self.last_error: BaseException | None = None
        self._subscribers: list[_Subscriber] = []
        self._desired_pending: Json | None = None
        self._desired_task: asyncio.Task[None] | None = None
        self._outbox: deque[Outgoing] = deque()
        self._link: Link | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._state_changed = asyncio.Event()
        self._refused: ConnectRefused | None = None
        self._flush_waiters: list[asyncio.Future[None]] = []
        self._closing = False
        self.actions = Actions(thing_id, self._answer)
        self._actions_link: Link | None = None  # the connection subscribed to actions

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.usable()

    @property
    def queued(self) -> int:
        """Messages waiting for a connection (not yet written to the broker)."""
        return len(self._outbox)

    def start(self) -> None:
        """Start connecting in the background and keep the connection up until `close()`;
        returns at once. Messages published before the first connection wait in the queue."""
        if self._closing:
            raise DeviceClosed(f"{self.thing_id} is closed")
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(
                self._keep_connected(), name=f"iotas-device-{self.thing_id}"
            )

    async def connect(self, *, give_up_after: float | None = 30.0) -> None:
        """Connect and return once connected; the connection is then kept up until `close()`.

        Raises `ConnectRefused` when the broker refuses the credentials or client id, and
        `ConnectTimeout` when no connection could be made within `give_up_after` seconds
        (unreachable broker, refusals it calls temporary); either way the device is closed.
        """
        self.start()
        try:
            async with asyncio.timeout(give_up_after):
                while not self.connected:
                    if self._refused is not None:
                        raise self._refused
                    self._state_changed.clear()
                    await self._state_changed.wait()
        except TimeoutError:
            await self.close()
            reason = f": {self.last_error}" if self.last_error else ""
            raise ConnectTimeout(
                f"no connection to {self.url} within {give_up_after} s{reason}"
            ) from None
        except ConnectRefused:
            await self.close()
            raise

    async def close(self, *, grace: float = 5.0) -> None:
        """Send what is queued, publish "offline" (retained), disconnect cleanly.

        Waits at most `grace` seconds for the queue to drain; messages still unsent then
        fail with `DeviceClosed` for whoever awaits them. Cancelling `close()` still
        releases everything (it then skips the goodbye)."""
        if self._closing:
            return
        self._closing = True
        tasks = [t for t in (self._supervisor, self._desired_task) if t is not None]
        try:
            await self.actions.stop()
            await self._say_goodbye(grace)
        finally:
            for task in tasks:
                task.cancel()
            if self._link is not None:
                self._link.abort()
                self._fail_inflight(self._link)
            self._link = None
            while self._outbox:
                _fail(self._outbox.popleft().done, DeviceClosed(f"{self.thing_id} was closed"))
            self._fail_flush_waiters()
            self._state_changed.set()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _say_goodbye(self, grace: float) -> None:
        link = self._link
        if link is None or not link.usable():
            return
        try:
            async with asyncio.timeout(grace):
                await self._wait_idle()
                offline = self._new(self._presence, OFFLINE, 1, True, wait=True, control=True)
                self._send(link, offline)
                assert offline.done is not None
                await offline.done
        except (TimeoutError, DeviceError):
            _log.info("%s: closing with messages unacknowledged", self.thing_id)
        if link.usable():
            # A clean DISCONNECT: the broker discards the will, "offline" was said above.
            await link.client.disconnect()

    def drop_connection(self) -> None:
        """Cut the connection without an MQTT DISCONNECT, as a power or network loss would:
        the broker publishes the last will ("offline"). The device reconnects as usual.
        Meant for tests and the fleet simulator."""
        if self._link is not None:
            self._link.abort()

    async def flush(self) -> None:
        """Wait until every queued and in-flight message has been written and acknowledged
        (bound it with `asyncio.timeout`: while disconnected that takes a reconnect)."""
        await self._wait_idle()

    # -- publishing ------------------------------------------------------------------------

    async def telemetry(
        self,
        values: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        qos: int = 1,
        wait: bool = True,
    ) -> None:
        """Send samples: `{"temp": 21.5}` (now) or `[{"ts": ..., "temp": 21.5}, ...]` with
        `ts` an RFC 3339 string, a datetime or epoch milliseconds.

        With `wait` (the default) this returns once the broker acknowledged the message (QoS
        1) or once it was written (QoS 0); while disconnected that is after the reconnect,
        so bound it with `asyncio.timeout` if need be (the message stays queued). With
        `wait=False` it returns as soon as the message is queued."""
        payload: Mapping[str, Any] | list[Mapping[str, Any]]
        if isinstance(values, Mapping):
            payload = values
        elif isinstance(values, Sequence) and values and not isinstance(values, str | bytes):
            if not all(isinstance(sample, Mapping) for sample in values):
                raise TypeError("telemetry samples must be mappings")
            payload = list(values)
        else:
            raise TypeError("telemetry takes a mapping or a non-empty list of mappings")
        await self._publish(self._topics["telemetry"], payload, qos, wait)

    async def report(self, patch: Mapping[str, Any], *, qos: int = 1, wait: bool = True) -> None:
        """Merge `patch` into the reported state (JSON merge patch: None removes a key).
        Top-level keys starting with "$" (such as "$version") are metadata and left out, so
        `report(device.desired)` reports the desired state as applied."""
        if not isinstance(patch, Mapping):
            raise TypeError("a reported patch must be a mapping")
        clean = {k: v for k, v in patch.items() if not str(k).startswith("$")}
        await self._publish(self._topics["reported"], clean, qos, wait)

    async def event(
        self, name: str, payload: Any = None, *, qos: int = 1, wait: bool = True
    ) -> None:
        """Say that something happened: `event("overheat", {"temp": 96.0})`."""
        if not name or any(c in name for c in "/+#") or not name.isprintable():
            raise ValueError(f"{name!r} is not a valid event name (one topic level, no / + #)")
        await self._publish(f"things/{self.thing_id}/events/{name}", payload, qos, wait)

    async def _publish(self, topic: str, payload: Any, qos: int, wait: bool) -> None:
        if qos not in (0, 1):
            raise ValueError("qos must be 0 or 1")
        if self._closing:
            raise DeviceClosed(f"{self.thing_id} is closed")
        message = self._new(topic, orjson.dumps(payload, option=JSON_OPTIONS), qos, False, wait)
        self.stats.submitted += 1
        link = self._link
        if (
            link is not None
            and not self._outbox
            and (qos == 0 or len(link.inflight) < self._max_inflight)
            and link.usable()
        ):
            self._send(link, message)
        else:
            self._enqueue(message)
        if message.done is not None:
            await message.done

    # -- actions ---------------------------------------------------------------------------

    def on_action(self, name: str) -> Callable[[ActionHandler], ActionHandler]:
        """Register the handler of action `name`, as a decorator:

            @device.on_action("reboot")
            async def reboot(input, progress):
                await progress(50)        # reported as running, 50 %
                return {"uptime": 0}      # the output: succeeded

        The handler gets the invocation's input (JSON) and `progress(percent)`; what it
        returns is the output, an exception fails the invocation (`ActionError` sets the
        code). The device subscribes to `things/{id}/actions/+/+` (on every connect from
        now on), answers `running` on receipt, and runs each invocation once even when
        iotas sends it again; handlers run concurrently. An invocation of an action
        without a handler fails with code `unknown`."""

        def register(handler: ActionHandler) -> ActionHandler:
            self.actions.register(name, handler)
            link = self._link
            if link is not None and link.usable():
                self._subscribe_actions(link)
            return handler

        return register

    def _subscribe_actions(self, link: Link) -> None:
        if self.actions.handlers and self._actions_link is not link:
            self._actions_link = link
            link.client.subscribe(self.actions.filter, qos=1)

    async def _answer(self, topic: str, result: dict[str, Any]) -> None:
        await self._publish(topic, result, 1, wait=False)

    # -- desired state ---------------------------------------------------------------------

    def on_desired(self, callback: DesiredCallback) -> DesiredCallback:
        """Call `callback(desired)` (sync or async) with the full desired state, "$version"
        included: at once if one is known, then on connect (the retained message) and on
        every change, each document once. If it returns a mapping, that is reported back as
        applied (a merge patch on `reported`). Callbacks run one at a time; when changes
        arrive meanwhile, only the newest is delivered next. Returns `callback`, so it also
        works as a decorator."""
        self._subscribers.append(_Subscriber(callback))
        if self.desired:
            self._schedule_desired(self.desired)
        return callback

    def _on_message(self, client: Any, topic: str, payload: bytes, qos: int, props: Any) -> None:
        if self.actions.owns(topic):
            if not self._closing:
                self.actions.take(topic, payload)
            return
        if topic != self._topics["desired"] or not payload:
            return
        try:
            document = orjson.loads(payload)
        except orjson.JSONDecodeError:
            document = None
        if not isinstance(document, dict):
            _log.warning("%s: ignoring a desired state that is not a JSON object", self.thing_id)
            return
        if document != self.desired:  # a reconnect brings the retained document again
            self.stats.desired_received += 1
        self.desired = document
        self._schedule_desired(document)

    def _schedule_desired(self, document: Json) -> None:
        # The topic carries the full state, so the newest document supersedes any pending one.
        self._desired_pending = document
        if self._subscribers and (self._desired_task is None or self._desired_task.done()):
            self._desired_task = asyncio.create_task(self._deliver_desired())

    async def _deliver_desired(self) -> None:
        while self._desired_pending is not None:
            document, self._desired_pending = self._desired_pending, None
            for subscriber in list(self._subscribers):
                if subscriber.seen == document:
                    continue
                subscriber.seen = document
                try:
                    result = subscriber.callback(dict(document))
                    if inspect.isawaitable(result):
                        result = await result
                except Exception:
                    _log.exception("%s: on_desired callback failed", self.thing_id)
                    continue
                if isinstance(result, Mapping) and not self._closing:
                    await self.report(result, wait=False)

    # -- the connection --------------------------------------------------------------------

    async def _keep_connected(self) -> None:
        attempt = 0
        while not self._closing:
            if attempt:
                await asyncio.sleep(
                    backoff_delay(
                        attempt,
                        initial=self._backoff_initial,
                        cap=self._backoff_max,
                        rng=self._rng,
                    )
                )
            try:
                link = await self._open()
            except ConnectRefused as exc:
                self.stats.connect_failures += 1
                self.last_error = exc
                if self.stats.connects == 0:
                    # Before any success this is a configuration error: tell connect().
                    self._refused = exc
                    self._state_changed.set()
                    return
                _log.warning("%s: %s; retrying", self.thing_id, exc)
                attempt += 1
                continue
            except (OSError, TimeoutError, gmqtt.MQTTConnectError) as exc:
                self.stats.connect_failures += 1
                self.last_error = exc
                attempt += 1
                continue
            attempt = 1  # after a drop, the first retry is jittered too
            self._up(link)
            await link.lost.wait()
            self._down(link)

    async def _open(self) -> Link:
        tracker = AckTracker()
        client = GmqttClient(
            self.thing_id,
            clean_session=True,
            will_message=gmqtt.Message(self._presence, OFFLINE, qos=1, retain=True),
            persistent_storage=tracker,
        )
        client.set_auth_credentials(self.thing_id, self._secret)
        link = Link(client, tracker)
        tracker.on_ack = partial(self._on_ack, link)
        client.on_message = self._on_message
        client.on_disconnect = lambda _client, _packet, _exc=None: link.lost.set()
        try:
            async with asyncio.timeout(self._connect_timeout):
                await self._handshake(client, link)
        except gmqtt.MQTTConnectError as exc:
            link.abort()
            code = getattr(exc, "_code", 0)
            if code in REFUSALS:
                raise ConnectRefused(self.url, code) from None
            raise
        except BaseException:
            link.abort()
            raise
        return link

    async def _handshake(self, client: GmqttClient, link: Link) -> None:
        """CONNECT and wait for CONNACK, or for the connection to close: gmqtt's `connect()`
        alone would wait for a CONNACK that a closed connection never brings."""
        connecting = asyncio.ensure_future(
            client.connect(
                self._host, self._port, ssl=self._ssl, keepalive=self._keepalive, version=MQTTv311
            )
        )
        lost = asyncio.ensure_future(link.lost.wait())
        try:
            await asyncio.wait({connecting, lost}, return_when=asyncio.FIRST_COMPLETED)
            if not connecting.done():
                # A refusal (CONNACK code, then close) may be a moment behind the close.
                await asyncio.wait({connecting}, timeout=REFUSAL_GRACE)
        finally:
            for task in (connecting, lost):
                task.cancel()
            await asyncio.gather(connecting, lost, return_exceptions=True)
        if connecting.cancelled():
            raise ConnectionResetError("the connection closed before the broker answered")
        connecting.result()  # raises a refusal or a socket error
        if link.lost.is_set():
            raise ConnectionResetError("the broker closed the connection after CONNACK")

    def _up(self, link: Link) -> None:
        self._link = link
        self.stats.connects += 1
        if self.stats.connects > 1:
            self.stats.reconnects += 1
        if self._follow_desired:
            # The retained desired message follows the SUBACK: the latest state on every connect.
            link.client.subscribe(self._topics["desired"], qos=1)
        # Before "online": iotas sends invocations once it learns the Thing is connected.
        self._subscribe_actions(link)
        link.ready = True
        self._send(link, self._new(self._presence, ONLINE, 1, True, wait=False, control=True))
        self._drain()
        self._state_changed.set()

    def _down(self, link: Link) -> None:
        link.ready = False
        link.abort()
        if self._link is link:
            self._link = None
        if self._closing:
            # close() is waiting for acknowledgements that will not come now.
            self._fail_inflight(link)
            self._fail_flush_waiters()
            return
        # Unacknowledged messages go out again on the next connection, in their order.
        again = [m for m in link.inflight.values() if not m.control]
        link.inflight.clear()
        self.stats.resent += len(again)
        self._outbox.extendleft(reversed(again))
        self._trim()
        self._state_changed.set()

    def _new(
        self, topic: str, payload: bytes, qos: int, retain: bool, wait: bool, control: bool = False
    ) -> Outgoing:
        done = asyncio.get_running_loop().create_future() if wait else None
        return Outgoing(topic, payload, qos, retain, done, control)

    def _send(self, link: Link, message: Outgoing) -> None:
        link.client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)
        if not message.control:
            self.stats.sent += 1
        if message.qos:
            link.inflight[link.tracker.last_mid] = message
        else:
            _resolve(message.done)

    def _enqueue(self, message: Outgoing) -> None:
        self._outbox.append(message)
        self._trim()

    def _trim(self) -> None:
        while len(self._outbox) > self._queue_limit:
            oldest = self._outbox.popleft()
            self.stats.dropped += 1
            _fail(oldest.done, MessageDropped(f"{self.thing_id}: queue full, message dropped"))

    def _drain(self) -> None:
        link = self._link
        if link is None or not link.usable():
            return
        outbox = self._outbox
        while outbox and (outbox[0].qos == 0 or len(link.inflight) < self._max_inflight):
            self._send(link, outbox.popleft())
        self._check_idle()

    def _on_ack(self, link: Link, mid: int) -> None:
        message = link.inflight.pop(mid, None)
        if message is None:
            return
        if not message.control:
            self.stats.acked += 1
        _resolve(message.done)
        if self._outbox:
            self._drain()
        else:
            self._check_idle()

    def _fail_inflight(self, link: Link) -> None:
        for message in link.inflight.values():
            _fail(message.done, DeviceClosed(f"{self.thing_id} was closed"))
        link.inflight.clear()

    def _fail_flush_waiters(self) -> None:
        for waiter in self._flush_waiters:
            _fail(waiter, DeviceClosed(f"{self.thing_id} was closed"))
        self._flush_waiters.clear()

    async def _wait_idle(self) -> None:
        if self._idle():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(waiter)
        try:
            await waiter
        finally:
            if waiter in self._flush_waiters:
                self._flush_waiters.remove(waiter)

    def _idle(self) -> bool:
        link = self._link
        return not self._outbox and (link is None or not link.inflight)

    def _check_idle(self) -> None:
        if self._flush_waiters and self._idle():
            for waiter in self._flush_waiters:
                _resolve(waiter)
            self._flush_waiters.clear()


def _resolve(future: asyncio.Future[None] | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


def _fail(future: asyncio.Future[None] | None, error: BaseException) -> None:
    if future is not None and not future.done():
        future.set_exception(error)
