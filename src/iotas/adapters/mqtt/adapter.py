"""iotas as an MQTT client of a broker (Mosquitto, EMQX, ... or the embedded one).

The transport only: what a message means is `ingest.DeviceMessages`. QoS 1 messages are
acknowledged to the broker only after what they carry is committed (MQTT 5, gmqtt with
optimistic acknowledgement off: the PUBACK goes out when `_on_message` returns), and iotas
keeps a persistent session, so a crash between receipt and commit means the broker delivers
the message again. A message that cannot be taken (bad topic, bad payload, unknown Thing) is
acknowledged too, so the broker does not resend it forever; it is counted and logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from gmqtt import Client as GmqttClient
from gmqtt import Message as GmqttMessage
from gmqtt import Subscription
from gmqtt.mqtt.constants import MQTTv50
from gmqtt.mqtt.handler import MqttPackageHandler

from iotas.adapters.mqtt import dynsec, topics
from iotas.adapters.mqtt.desired import mirror_desired
from iotas.adapters.mqtt.ingest import MAX_PAYLOAD, DeviceMessages, Results
from iotas.aio import cancel_and_wait
from iotas.domain.errors import InvalidInput
from iotas.services.credentials import CredentialService
from iotas.services.journal import JournalService
from iotas.services.registry import Registry
from iotas.services.stats import IngestStats
from iotas.services.stream import JournalSignal
from iotas.services.telemetry import TelemetryService

log = logging.getLogger("iotas.mqtt")

SESSION_EXPIRY = 7 * 24 * 3600  # how long the broker keeps iotas' queue while it is away
# How long an invocation's publish waits for the broker's PUBACK.
ACK_WAIT = 10.0
# Invocations in flight to the broker at once, at most.
MAX_INFLIGHT = 1000
# MQTT 5 PUBACK reason codes: 0x10, the broker had no subscriber for it; from 0x80, errors.
NO_MATCHING_SUBSCRIBERS = 0x10
NOT_SENT = 0x80


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @staticmethod
    def parse(url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise InvalidInput(f"an MQTT URL is mqtt://host:port or mqtts://host:port, not {url!r}")
        tls = parts.scheme == "mqtts"
        return BrokerAddress(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


# A PUBLISH with QoS 1 (whatever its DUP and RETAIN flags), and the PUBACK that answers it
# with reason "success" and no properties (MQTT 5 allows leaving both out).
_PUBLISH_QOS_1 = 0x32
_PUBLISH_QOS_MASK = 0xF6
_PUBACK = b"\x40\x02"


class _AckOnCommit(MqttPackageHandler):  # type: ignore[misc]
    """gmqtt's packet handler, taking QoS 1 PUBLISH packets the cheap way.

    With acknowledgements after our commit, gmqtt wraps every message in a Task around the
    `on_message` coroutine, and writes every PUBACK to the socket by itself; at thousands of
    messages a second both showed in profiles. Here a QoS 1 PUBLISH without properties (all
    that devices' telemetry ever is) is read in a few slices and handed to `take`, which
    checks it at once and returns a future of its commit (or None: done with, acknowledge
    now). Messages of one telemetry batch share its future, so their PUBACKs go out in one
    write when it succeeds, and not at all when it fails: the broker sends them again.
    Anything else takes gmqtt's own path.
    """

    take: Callable[[str, bytes], asyncio.Future[Any] | None]
    # Told of each PUBACK of iotas' own publishes: (packet id, reason code).
    on_puback: Callable[[int, int], None] | None = None
    # gmqtt's connection to the broker at the moment (a new one after each reconnect).
    connection: Callable[[], Any]
    # Per commit, the packet ids owed a PUBACK, per connection they arrived on.
    _owed: dict[asyncio.Future[Any], dict[Any, list[int]]]

    def _handle_packet(self, cmd: int, packet: bytes) -> None:
        if (
            cmd & _PUBLISH_QOS_MASK != _PUBLISH_QOS_1
            or self._optimistic_acknowledgement
            or self._connection_state.protocol_version < MQTTv50  # no properties to skip
        ):
            super()._handle_packet(cmd, packet)
            return
        end = 2 + int.from_bytes(packet[:2], "big")
        if len(packet) < end + 3 or packet[end + 2] != 0:  # properties: gmqtt reads them
            super()._handle_packet(cmd, packet)
            return
        try:
            topic = packet[2:end].decode()
        except UnicodeDecodeError:
            super()._handle_packet(cmd, packet)
            return
        self._last_msg_in = time.monotonic()
        self._take(int.from_bytes(packet[end : end + 2], "big"), packet[end + 3 :], topic)

    def _handle_puback_packet(self, cmd: int, packet: bytes) -> None:
        if self.on_puback is not None and len(packet) >= 2:
            # MQTT 5: a reason code may follow the packet id (absent: success).
            self.on_puback(int.from_bytes(packet[:2], "big"), packet[2] if len(packet) > 2 else 0)
        super()._handle_puback_packet(cmd, packet)

    def _handle_qos_1_publish_packet(
        self, mid: int, packet: bytes, print_topic: str, properties: Any
    ) -> None:
        if self._optimistic_acknowledgement:
            super()._handle_qos_1_publish_packet(mid, packet, print_topic, properties)
        else:
            self._take(mid, packet, print_topic)

    def _take(self, mid: int, payload: bytes, topic: str) -> None:
        try:
            stored = self.take(topic, payload)
        except Exception:
            log.exception("could not take a message on %s; not acknowledged", topic[:200])
            return
        connection = self.connection()
        if stored is None:
            connection.send_package(_PUBACK + mid.to_bytes(2, "big"))
            return
        owed = self._owed.get(stored)
        if owed is None:
            owed = self._owed[stored] = {}
            stored.add_done_callback(self._acknowledge)
        owed.setdefault(connection, []).append(mid)

    def _acknowledge(self, stored: asyncio.Future[Any]) -> None:
        owed = self._owed.pop(stored, {})
        if stored.cancelled():
            return
        if (exc := stored.exception()) is not None:
            # A broker sends unacknowledged messages again only on a new connection, and until
            # then they hold its in-flight window: a few failed batches would stop delivery.
            count = sum(len(mids) for mids in owed.values())
            log.warning(
                "%d message(s) not stored (%s); reconnecting so the broker sends them again",
                count,
                exc,
            )
            current = self.connection()
            if current is not None and current in owed:
                current._transport.close()  # gmqtt reconnects, the session resends
            return
        current = self.connection()
        for connection, mids in owed.items():
            # Only on the connection they came by: after a reconnect the broker sends those
            # messages again, and may have given their packet ids to other messages.
            if connection is current:
                connection.send_package(b"".join(_PUBACK + m.to_bytes(2, "big") for m in mids))


def _ack_on_commit(client: Any, take: Callable[[str, bytes], asyncio.Future[Any] | None]) -> None:
    # gmqtt builds its handler itself; it becomes the one above in place, before any packet.
    handler = client._package_handler
    handler.__class__ = _AckOnCommit
    handler.take = take
    handler.connection = lambda: client._connection
    handler._owed = {}


class MqttAdapter:
    def __init__(
        self,
        broker: BrokerAddress,
        *,
        registry: Registry,
        telemetry: TelemetryService,
        journal: JournalService,
        signal: JournalSignal,
        stats: IngestStats,
        client_id: str = "iotas",
        session_expiry: int = SESSION_EXPIRY,
        max_payload: int = MAX_PAYLOAD,
        credentials: CredentialService | None = None,
        results: Results | None = None,
    ) -> None:
        self.broker = broker
        self.registry = registry
        self.journal = journal
        self.signal = signal
        self.client_id = client_id
        self.session_expiry = session_expiry
        self.messages = DeviceMessages(
            registry=registry,
            telemetry=telemetry,
            stats=stats,
            max_payload=max_payload,
            credentials=credentials,
            results=results,
        )
        self.messages.reply = self._answer
        self._client: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._connected = asyncio.Event()
        self._seen = self.messages.seen_controller()
        # iotas' own publishes awaiting their PUBACK (invocations), by packet id.
        self._acks: dict[int, asyncio.Future[int]] = {}
        # Told when the connection to the broker is (re)made (the dispatcher sends again).
        self.on_connected: Callable[[], None] | None = None
        # Invocations awaiting the broker's PUBACK at once: at most half of what the broker
        # lets iotas have in flight (its MQTT 5 Receive Maximum; Mosquitto's
        # max_inflight_messages), the other half left to desired state and answers.
        self._inflight = asyncio.Semaphore(1)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        client = GmqttClient(
            self.client_id,
            clean_session=False,
            optimistic_acknowledgement=False,
            session_expiry_interval=self.session_expiry,
        )
        if self.broker.username:
            client.set_auth_credentials(self.broker.username, self.broker.password)
        client.on_message = self._on_message
        _ack_on_commit(client, self.messages.take)
        client._package_handler.on_puback = self._acknowledged
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client
        start_seq = await self.journal.head_seq()
        await client.connect(
            self.broker.host, self.broker.port, ssl=self.broker.tls, version=MQTTv50, keepalive=30
        )
        await asyncio.wait_for(self._connected.wait(), 10)
        allowed = int(client._package_handler.id_generator._max)
        self._inflight = asyncio.Semaphore(max(1, min(MAX_INFLIGHT, (allowed - 1) // 2)))
        self._tasks = [
            asyncio.create_task(
                mirror_desired(
                    self.journal, self.registry, self.signal, self._publish, after=start_seq
                ),
                name="iotas-mqtt-desired",
            ),
        ]
        self._seen.start()

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        await self._seen.stop()
        await self.messages.drain()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.disconnect()

    def _publish(self, topic: str, payload: bytes) -> None:
        self._client.publish(topic, payload, qos=1, retain=True)

    def _answer(self, topic: str, payload: bytes) -> None:
        self._client.publish(topic, payload, qos=1, retain=False)

    async def deliver(
        self, topic: str, payload: bytes, *, response_topic: str, correlation: bytes
    ) -> bool:
        """Publish an invocation (QoS 1, not retained; MQTT 5 response topic and correlation
        data set) and wait for the broker's PUBACK: True when it took it for a subscriber
        (not reason 0x10, no matching subscribers, nor an error)."""
        async with self._inflight:
            return await self._deliver(topic, payload, response_topic, correlation)

    async def _deliver(
        self, topic: str, payload: bytes, response_topic: str, correlation: bytes
    ) -> bool:
        client = self._client
        connection = client._connection if client is not None else None
        if connection is None or not self.connected:
            return False
        message = GmqttMessage(
            topic,
            payload,
            qos=1,
            retain=False,
            response_topic=response_topic,
            correlation_data=correlation,
        )
        # Not kept in gmqtt's store: iotas' queue sends it again if this connection ends.
        mid, _package = connection.publish(message)
        acked: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._acks[mid] = acked
        try:
            reason = await asyncio.wait_for(acked, ACK_WAIT)
        except TimeoutError:
            return False
        finally:
            if self._acks.get(mid) is acked:
                del self._acks[mid]
        return reason < NO_MATCHING_SUBSCRIBERS

    def _acknowledged(self, mid: int, reason: int) -> None:
        acked = self._acks.pop(mid, None)
        if acked is not None and not acked.done():
            acked.set_result(reason)

    def cut_off(self, thing_id: str, *, for_good: bool) -> None:
        """Ask the broker's dynamic security plugin (Mosquitto's, as `iotas broker-config`
        sets it up) to drop the Thing's session, and with `for_good` (no credential left)
        keep it out (see `dynsec.cut_off`). A broker without the plugin, or that does not
        let iotas command it, ignores this; the answer is logged when it is an error."""
        self._client.publish(
            dynsec.CONTROL_TOPIC, dynsec.cut_off(thing_id, for_good=for_good), qos=1
        )

    # -- broker callbacks -------------------------------------------------------------

    def _on_connect(self, client: Any, flags: Any, rc: Any, properties: Any) -> None:
        # Subscriptions live in the persistent session, but subscribing again is harmless and
        # covers a session the broker dropped (expiry, restart without persistence).
        client.subscribe([Subscription(topic, qos=1) for topic in topics.SUBSCRIPTIONS])
        client.subscribe(Subscription(dynsec.RESPONSE_TOPIC, qos=0))
        self._connected.set()
        if self.on_connected is not None:
            self.on_connected()

    def _on_disconnect(self, client: Any, packet: Any, exc: Any = None) -> None:
        self._connected.clear()
        acks, self._acks = self._acks, {}
        for acked in acks.values():
            if not acked.done():
                acked.set_result(NOT_SENT)
        log.warning(
            "disconnected from the MQTT broker %s:%s (%s); reconnecting",
            self.broker.host,
            self.broker.port,
            exc or getattr(packet, "reason_code", packet),
        )

    async def _on_message(
        self, client: Any, topic: str, payload: bytes, qos: int, properties: Any
    ) -> int:
        # Returning sends the PUBACK; an exception (the database is down) sends none, so the
        # broker keeps the message in iotas' session and delivers it again on reconnect.
        if topic == dynsec.RESPONSE_TOPIC:
            for command, error in dynsec.errors(payload):
                log.warning(
                    "the broker refused %s: %s (is its configuration from iotas broker-config?)",
                    command,
                    error,
                )
            return 0
        await self.messages.handle(topic, payload)
        return 0

    # -- background work --------------------------------------------------------------
