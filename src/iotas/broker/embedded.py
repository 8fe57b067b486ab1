"""The embedded MQTT broker: amqtt in this process, devices authenticated by iotas.

What iotas changes in amqtt is in `gated.py` (the broker: connect path, sessions, delivery)
and `handler.py` (each connection: publishes committed before they are acknowledged, and
nothing delivered outside the client's own topics); here it is started, stopped and used.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from amqtt.errors import AMQTTError
from amqtt.mqtt.constants import QOS_0, QOS_1

from iotas.adapters.mqtt import topics
from iotas.broker.gate import BrokerGate
from iotas.broker.gated import GatedBroker

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
        self._broker: GatedBroker | None = None

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
            },
        }
        broker = GatedBroker(config, self.gate)
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

    async def deliver(self, client_id: str, topic: str, payload: bytes) -> bool:
        """Send to the connected device `client_id` itself, QoS 1, not retained, if it is
        subscribed to its actions: True once the device acknowledged it. Never queued for
        a device that is away (its invocation waits in iotas' queue instead)."""
        broker = self._broker
        if broker is None or not self.gate.owns(client_id, topic):
            return False
        session, handler = broker._sessions.get(client_id, (None, None))
        if session is None or handler is None or session.transitions.state != "connected":
            return False
        subscribed = broker._subscriptions
        if not any(
            any(s is session for s, _qos in subscribed.get(f, ()))
            for f in topics.action_filters(client_id)
        ):
            return False
        try:
            sent = await handler.mqtt_publish(topic, payload, QOS_1, retain=False)
        except (AMQTTError, OSError, TimeoutError) as exc:
            log.info("an invocation to %s was not acknowledged: %s", client_id, exc)
            return False
        return sent is not None and sent.puback_packet is not None

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
            # Each connection records its end (presence) as it ends: before the database goes.
            await self._broker.connections.ended()
            self._broker = None
        await self.gate.presence_settled()


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
