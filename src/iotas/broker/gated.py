"""amqtt's broker with its connect and delivery paths made right for iotas (decision 47).

amqtt 0.12 gets these wrong, and they are overridden here (never patched in site-packages):

- The CONNECT is read whole by its length (`connect.py`): amqtt parses it field by field
  and waited forever inside an MQTT 5 one. Other protocol levels are refused at once.
- The CONNECT is judged by iotas before amqtt touches the session it names.
- A new connection of a client id closes the one that holds the session and waits until it
  has ended (`takeover.py`); amqtt left it open, or let it mark the session disconnected.
- On connect, amqtt replayed the retained messages of every topic filter that any session
  held, to the connecting client, without a topic check, and while iterating the broker's
  subscription table across awaits (which other connects change: "dictionary changed size
  during iteration", and the connection dropped). MQTT sends retained messages when a
  subscription is made, not at connect; a resumed session gets the messages queued for it
  while it was away. That is what happens here.
- Broadcasting iterated the same table across awaits (a task per topic check); here the
  check is the gate's, synchronous, over a copy of the table.

Every delivery is also checked where all paths meet, in the handler (`handler.py`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from typing import Any

from amqtt.adapters import BufferReader
from amqtt.broker import Broker
from amqtt.errors import AMQTTError, BrokerError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.connect import ConnectPacket
from amqtt.mqtt.constants import QOS_1, QOS_2
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler

from iotas.broker.connect import MQTT_311, NotConnect, first_packet, refusal
from iotas.broker.gate import BrokerGate
from iotas.broker.handler import gated
from iotas.broker.provisioning import CLAIM_USERNAME, SESSION_PREFIX, is_claim_session
from iotas.broker.takeover import Connections

log = logging.getLogger("iotas.broker")

_REFUSED = 0x80  # a SUBACK's failure return code


class GatedBroker(Broker):
    gate: BrokerGate

    def __init__(self, config: dict[str, Any], gate: BrokerGate) -> None:
        super().__init__(config)
        self.gate = gate
        self.connections = Connections()

    @staticmethod
    def _create_ssl_context(listener: Any) -> ssl.SSLContext:
        # amqtt asks for client certificates but lets a client without one in; on this
        # listener the certificate is the device's identity, so it is required.
        context: ssl.SSLContext = Broker._create_ssl_context(listener)
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    async def _initialize_client_session(
        self, reader: Any, writer: Any, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Any]:
        # The CONNECT is read whole first: amqtt would wait forever inside an MQTT 5 one.
        try:
            first = await first_packet(reader)
        except (EOFError, TimeoutError, NotConnect) as exc:
            await writer.close()
            raise AMQTTError(f"no CONNECT from {remote_address}: {exc!r}") from None
        if first.level != MQTT_311:
            writer.write(refusal(first.level))
            await writer.close()
            self.gate.stats.reject(
                "unsupported_protocol",
                f"MQTT protocol level {first.level}: the embedded broker speaks 3.1.1 (level 4)",
                source=remote_address,
            )
            raise AMQTTError(f"protocol level {first.level} refused")
        # amqtt looks up, deletes (clean session) or takes over the session of the CONNECT's
        # client id before it asks whether the login is good, so anyone who knows a Thing id
        # could throw that device out. The CONNECT is therefore checked here first; amqtt
        # then reads the same bytes again.
        connect = await ConnectPacket.from_stream(BufferReader(first.raw))
        if connect is None:
            await writer.close()
            raise AMQTTError(f"an unreadable CONNECT from {remote_address}")
        if not await self._may_connect(connect, writer, remote_address):
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await writer.close()
            raise AMQTTError(f"login of {connect.client_id!r} refused")
        # Before amqtt looks the session up: the connection that holds it ends first.
        connection = await self.connections.take(connect.client_id, writer)
        try:
            handler, session = await super()._initialize_client_session(
                _Replay(first.raw, reader), writer, remote_address, remote_port
            )
        except BaseException:
            self.connections.release(connection)
            raise
        gated(handler, self.gate).iotas_connection = connection
        # The verified client certificate of a TLS connection (None on the plain listener),
        # for the auth plugin: set on every connection, as a session outlives its connections.
        session.iotas_certificate = _peer_certificate(writer)
        session.iotas_source = remote_address  # whose failed logins are limited
        return handler, session

    async def _handle_client_session(
        self,
        reader: Any,
        writer: Any,
        client_session: Any,
        handler: BrokerProtocolHandler,
        server: Any,
        listener_name: str,
    ) -> None:
        """amqtt's, with the session taken over only once its last connection has ended
        (see takeover.py), presence recorded in order, and no replay of every session's
        retained messages at connect."""
        connection = handler.iotas_connection
        online = False
        try:
            authenticated = await self._authenticate(
                client_session, self.listeners_config[listener_name]
            )
            if connection.taken_over:  # by a later connection, while this one logged in
                await writer.close()
                return
            if client_session.client_id is None:
                raise BrokerError("Client ID was not correctly created/set.")
            if client_session.transitions.is_connected():
                # Its last connection has ended (taken over) without the state saying so.
                client_session.transitions.disconnect()
            client_session.transitions.connect()
            handler.attach(client_session, reader, writer)
            connection.handler = handler
            self._sessions[client_session.client_id] = (client_session, handler)
            await handler.mqtt_connack_authorize(authenticated)
            if not authenticated:
                client_session.transitions.disconnect()
                await writer.close()
                return
            self.gate.presence_changed(client_session.username, True)
            online = True
            await handler.start()
            await self._publish_session_retained_messages(client_session)
            await self._client_message_loop(client_session, handler)
        finally:
            # A connection taken over hands the Thing on connected.
            if online and not connection.taken_over:
                self.gate.presence_changed(client_session.username, False)
            self.connections.release(connection)

    async def _publish_session_retained_messages(self, session: Any) -> None:
        """What was queued for a persistent session while its client was away, in order; sent
        because of an existing subscription, so not as retained (MQTT 3.1.1, 3.3.1.3)."""
        handler = self._get_handler(session)
        sends = []
        while handler is not None and not session.retained_messages.empty():
            queued = session.retained_messages.get_nowait()
            sends.append(
                asyncio.ensure_future(
                    handler.mqtt_publish(queued.topic, queued.data, queued.qos, retain=False)
                )
            )
        if sends:
            await asyncio.wait(sends)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Any
    ) -> None:
        """The retained messages a new subscription matches, of the session's own topics."""
        handler = self._get_handler(session)
        if handler is None:
            return
        topic_filter, qos = subscription
        sends = [
            asyncio.ensure_future(
                handler.mqtt_publish(
                    retained.topic, retained.data, min(qos, retained.qos or qos), retain=True
                )
            )
            for topic, retained in list(self._retained_messages.items())
            if self._matches(topic, topic_filter) and self.gate.owns(session.username, topic)
        ]
        if sends:
            await asyncio.wait(sends)

    async def _run_broadcast(self, running_tasks: deque[asyncio.Task[Any]]) -> None:
        """Hand one message to each subscription it matches and its client may receive: sent
        to a connected client, queued for a persistent session's absent one (QoS 1 and 2)."""
        broadcast = await self._broadcast_queue.get()
        topic = broadcast["topic"]
        for topic_filter, subscriptions in list(self._subscriptions.items()):
            if not self._matches(topic, topic_filter):
                continue
            for target, sub_qos in list(subscriptions):
                if not self.gate.owns(target.username, topic):
                    continue
                qos = min(broadcast.get("qos", sub_qos), sub_qos)
                if target.transitions.state != "connected":
                    if qos in (QOS_1, QOS_2) and not target.clean_session:
                        await self._retain_broadcast_message(broadcast, qos, target)
                    continue
                handler = self._get_handler(target)
                if handler is not None:
                    running_tasks.append(
                        asyncio.ensure_future(
                            handler.mqtt_publish(topic, broadcast["data"], qos, retain=False)
                        )
                    )

    async def add_subscription(self, subscription: tuple[str, int], session: Any) -> int:
        code: int = await super().add_subscription(subscription, session)
        if code != _REFUSED:
            # MQTT lets the server send matching messages before the SUBACK (3.8.4).
            self.gate.subscribed(session.username, subscription[0])
        return code

    async def _may_connect(self, connect: Any, writer: Any, source: str) -> bool:
        """The gate's verdict on a CONNECT, before amqtt touches any session. Claim logins
        are judged later by their plugin (their client ids are never Thing ids)."""
        username = connect.username
        if username == CLAIM_USERNAME:
            return await self._claim_may_connect(connect, source)
        certificate = _peer_certificate(writer)
        if certificate is not None:
            thing_id = await self.gate.authenticate_certificate(
                connect.client_id, username, certificate, source
            )
            return thing_id is not None
        return await self.gate.authenticate(connect.client_id, username, connect.password, source)

    async def _claim_may_connect(self, connect: Any, source: str) -> bool:
        """A claim login may not take the session (and the answers queued in it, a private
        key among them) of a client id that another claim's device holds."""
        provisioning = self.gate.provisioning
        if provisioning is None:
            return False
        claim_id = await provisioning.claim_of(connect.client_id, connect.password, source)
        if claim_id is None:
            return False
        held, _handler = self._sessions.get(connect.client_id, (None, None))
        holder = getattr(held, "username", None)
        if is_claim_session(holder) and not str(holder).startswith(f"{SESSION_PREFIX}{claim_id}/"):
            self.gate.stats.reject(
                "auth_failed",
                f"client id {connect.client_id!r} is held by another claim's device",
                source=source,
            )
            return False
        return True


class _Replay:
    """A reader that gives `first` again, then reads on."""

    def __init__(self, first: bytes | bytearray, reader: Any) -> None:
        self.pending = bytes(first)
        self.reader = reader

    async def read(self, n: int = -1) -> bytes:
        if self.pending:
            size = len(self.pending) if n < 0 else n
            first, self.pending = self.pending[:size], self.pending[size:]
            return first
        rest: bytes = await self.reader.read(n)
        return rest

    def feed_eof(self) -> None:
        self.reader.feed_eof()


def _peer_certificate(writer: Any) -> str | None:
    stream = getattr(writer, "_writer", None)
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    return ssl.DER_cert_to_PEM_cert(der) if der else None
