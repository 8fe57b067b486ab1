"""The embedded MQTT broker: amqtt in this process, devices authenticated by iotas.

amqtt acknowledges a QoS 1 publish as soon as it has queued it, so if the process died before
iotas committed the message, the device would have been told "received" about a message that
is gone. Here the broker's protocol handler hands each device publish to iotas first and sends
the PUBACK (for QoS 2, the PUBREC) only when iotas has committed it (or refused it); then the
broker delivers it to other subscribers as usual. That is the same guarantee iotas gives on an
external broker.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from amqtt.errors import AMQTTError
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.connect import ConnectPacket
from amqtt.mqtt.constants import QOS_0, QOS_1
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.protocol.handler import INCOMING
from amqtt.mqtt.puback import PubackPacket

from iotas.adapters.mqtt import topics
from iotas.broker.gate import BrokerGate
from iotas.broker.provisioning import CLAIM_USERNAME, SESSION_PREFIX, is_claim_session

log = logging.getLogger("iotas.broker")

_PLUGINS = "iotas.broker.plugins"


class PortInUse(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class TlsListener:
    """MQTT over TLS: the port, the server's certificate and key, and the CA that client
    certificates must chain to (iotas' own)."""

    port: int
    certfile: Path
    keyfile: Path
    cafile: Path


class _GatedHandler(BrokerProtocolHandler):
    gate: BrokerGate

    async def _handle_qos0_message_flow(self, app_message: Any) -> None:
        if app_message.direction == INCOMING:
            await self._take(app_message)
            if _for_iotas_only(app_message.topic):
                return
        await super()._handle_qos0_message_flow(app_message)

    async def _handle_qos1_message_flow(self, app_message: Any) -> None:
        if app_message.direction == INCOMING:
            # An exception here (the database is away) means no PUBACK: the device sends again.
            await self._take(app_message)
            if _for_iotas_only(app_message.topic):
                puback = PubackPacket.build(app_message.packet_id)
                await self._send_packet(puback)
                app_message.puback_packet = puback
                return
        await super()._handle_qos1_message_flow(app_message)

    async def _handle_qos2_message_flow(self, app_message: Any) -> None:
        if app_message.direction == INCOMING:
            # Taken before the PUBREC: the device learns "received" only after the commit.
            await self._take(app_message)
        await super()._handle_qos2_message_flow(app_message)

    async def _take(self, app_message: Any) -> None:
        username = self.session.username if self.session is not None else None
        await self.gate.take(username, app_message.topic, bytes(app_message.data), app_message.qos)


def _for_iotas_only(topic: str) -> bool:
    """Telemetry, reports and events are for iotas, which took them already, and no one else
    may subscribe to them (a device reaches only its own topics). Handing them on to amqtt's
    broadcast queue would only make the desired state iotas publishes wait behind every
    telemetry message in that one queue (measured: seconds under load, see bench/ingest.py),
    so they end here, acknowledged. Presence still goes through, for its retained message."""
    parts = topic.split("/", 3)
    return len(parts) >= 3 and parts[0] == topics.PREFIX and parts[2] in _IOTAS_ONLY


_IOTAS_ONLY = topics.INBOUND - {"presence"}


class _GatedBroker(Broker):
    gate: BrokerGate

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
        # amqtt looks up, deletes (clean session) or takes over the session of the CONNECT's
        # client id before it asks whether the login is good, so anyone who knows a Thing id
        # could throw that device out. The CONNECT is therefore read and checked here first;
        # amqtt then reads the same bytes again.
        recording = _Recording(reader)
        connect = await ConnectPacket.from_stream(recording)
        if connect is not None and not await self._may_connect(connect, writer, remote_address):
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await writer.close()
            raise AMQTTError(f"login of {connect.client_id!r} refused")
        # amqtt builds the handler with the BrokerProtocolHandler class itself (a classmethod
        # reading the CONNECT), so it is turned into the gated one here, before any PUBLISH.
        handler, session = await super()._initialize_client_session(
            _Replay(recording.taken, reader), writer, remote_address, remote_port
        )
        _gated(handler, self.gate)
        # The verified client certificate of a TLS connection (None on the plain listener),
        # for the auth plugin: set on every connection, as a session outlives its connections.
        session.iotas_certificate = _peer_certificate(writer)
        session.iotas_source = remote_address  # whose failed logins are limited
        return handler, session

    async def _init_handler(self, session: Any, reader: Any, writer: Any) -> BrokerProtocolHandler:
        handler = await super()._init_handler(session, reader, writer)
        _gated(handler, self.gate)
        return handler

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


class _Recording:
    """A reader that keeps what was read through it."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader
        self.taken = bytearray()

    async def read(self, n: int = -1) -> bytes:
        data: bytes = await self.reader.read(n)
        self.taken += data
        return data

    def feed_eof(self) -> None:
        self.reader.feed_eof()


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


def _gated(handler: BrokerProtocolHandler, gate: BrokerGate) -> None:
    handler.__class__ = _GatedHandler
    handler.gate = gate


class EmbeddedBroker:
    def __init__(
        self,
        gate: BrokerGate,
        *,
        host: str = "127.0.0.1",
        port: int = 1883,
        tls: TlsListener | None = None,
    ) -> None:
        self.gate = gate
        self.host = host
        self.port = port
        self.tls = tls
        self._broker: _GatedBroker | None = None

    async def start(self) -> None:
        listeners: dict[str, Any] = {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}}
        if self.tls is not None:
            if not _port_free(self.host, self.tls.port):
                raise PortInUse(
                    f"the MQTT TLS port {self.host}:{self.tls.port} is taken: choose another "
                    "with --mqtts-port (0 for none)"
                )
            listeners["tls"] = {
                "type": "tcp",
                "bind": f"{self.host}:{self.tls.port}",
                "ssl": True,
                "certfile": str(self.tls.certfile),
                "keyfile": str(self.tls.keyfile),
                "cafile": str(self.tls.cafile),
            }
        config: dict[str, Any] = {
            "listeners": listeners,
            "plugins": {
                f"{_PLUGINS}.IotasAuthPlugin": {"gate": self.gate},
                f"{_PLUGINS}.IotasTopicPlugin": {"gate": self.gate},
                f"{_PLUGINS}.IotasPresencePlugin": {"gate": self.gate},
            },
        }
        broker = _GatedBroker(config)
        broker.gate = self.gate
        try:
            await broker.start()
        except Exception as exc:
            if _address_in_use(exc):
                raise PortInUse(
                    f"the MQTT port {self.host}:{self.port} is taken (another broker?): choose "
                    "another with --mqtt-port, or use that broker with --mqtt-url mqtt://host:port"
                ) from None
            raise
        self._broker = broker

    def drop(self, client_id: str) -> bool:
        """Cut the live connection of `client_id` (its credentials were revoked) as a network
        failure would: the broker cleans up, the last will fires, and the device's reconnect
        is refused. Returns whether there was one."""
        broker = self._broker
        if broker is None:
            return False
        _session, handler = broker._sessions.get(client_id, (None, None))
        writer = getattr(getattr(handler, "writer", None), "_writer", None)
        transport = getattr(writer, "transport", None)
        if transport is None:
            return False
        transport.abort()
        return True

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish as iotas itself, not retained, QoS 1 (an answer to a device)."""
        broker = self._broker
        if broker is None:
            return
        task = asyncio.ensure_future(broker.internal_message_broadcast(topic, payload, QOS_1))
        task.add_done_callback(_log_failure)

    def publish_retained(self, topic: str, payload: bytes) -> None:
        """Publish as iotas itself (desired state): retained, QoS 1."""
        broker = self._broker
        if broker is None:
            return
        task = asyncio.ensure_future(_retain_and_send(broker, topic, payload))
        task.add_done_callback(_log_failure)

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None


async def _retain_and_send(broker: Broker, topic: str, payload: bytes) -> None:
    await broker.retain_message(None, topic, payload, QOS_1)
    await broker.internal_message_broadcast(topic, payload, QOS_1 if payload else QOS_0)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("could not publish to the embedded broker", exc_info=task.exception())


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _address_in_use(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            return True
        if "address already in use" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False
