"""amqtt's protocol handler, one per connection, with iotas in both directions.

In: amqtt acknowledges a QoS 1 publish as soon as it has queued it, so if the process died
before iotas committed the message, the device would have been told "received" about a
message that is gone. Here each device publish goes to iotas first and the PUBACK (for QoS 2,
the PUBREC) is sent only when iotas has committed it (or refused it); then the broker delivers
it to other subscribers as usual. That is the same guarantee iotas gives on an external broker.

Out: every PUBLISH this connection is about to send (a subscription's match, a retained
message, one queued while the device was away, a redelivery) is checked against the
connection's own topics first. amqtt has several delivery paths, and one of them (the connect
path of 0.12) sent retained messages of any topic to anyone; checking here, where they all
meet, keeps a device to `things/<its id>/...` whatever path a message took.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from amqtt.errors import AMQTTError
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.protocol.handler import INCOMING, OUTGOING
from amqtt.mqtt.puback import PubackPacket

from iotas.adapters.mqtt import topics
from iotas.broker.gate import BrokerGate
from iotas.broker.takeover import Connection

# amqtt's wait for a device's PUBACK; past it the message waits for the next connection.
PUBACK_WAIT: Final = 5.0


class GatedHandler(BrokerProtocolHandler):
    gate: BrokerGate
    iotas_connection: Connection

    async def _handle_message_flow(self, app_message: Any) -> None:
        if app_message.direction == OUTGOING and not self._may_receive(app_message.topic):
            if self.session is not None and app_message.packet_id is not None:
                self.session.inflight_out.pop(app_message.packet_id, None)
            return
        await super()._handle_message_flow(app_message)

    def _may_receive(self, topic: str) -> bool:
        username = self.session.username if self.session is not None else None
        if self.gate.owns(username, topic):
            return True
        # Only a fault in a delivery path gets here: counted and logged, never sent.
        self.gate.stats.reject(
            "delivery_withheld",
            f"{topic[:200]!r} not sent to {username!r}: not one of its topics",
            source="the broker",
        )
        return False

    async def _handle_qos0_message_flow(self, app_message: Any) -> None:
        if app_message.direction == INCOMING:
            await self._take(app_message)
            if _for_iotas_only(app_message.topic):
                return
        await super()._handle_qos0_message_flow(app_message)

    async def _handle_qos1_message_flow(self, app_message: Any) -> None:
        if app_message.direction == OUTGOING:
            await self._send_qos1(app_message)
            return
        if app_message.direction == INCOMING:
            # An exception here (the database is away) means no PUBACK: the device sends again.
            await self._take(app_message)
            if _for_iotas_only(app_message.topic):
                puback = PubackPacket.build(app_message.packet_id)
                await self._send_packet(puback)
                app_message.puback_packet = puback
                return
        await super()._handle_qos1_message_flow(app_message)

    async def _send_qos1(self, app_message: Any) -> None:
        """amqtt's QoS 1 delivery, except that a message not acknowledged when the connection
        ends stays in a persistent session, to be sent again when the device is back (MQTT
        3.1.1, 4.4); amqtt forgot it, so a desired change sent to a connection that had died
        unnoticed was lost."""
        session = self.session
        if session is None:
            raise AMQTTError("Session is not initialized.")
        packet_id = app_message.packet_id
        session.inflight_out[packet_id] = app_message
        again = app_message.publish_packet is not None
        packet = app_message.build_publish_packet(dup=again)
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._puback_waiters[packet_id] = waiter
        try:
            await self._send_packet(packet)
            app_message.publish_packet = packet
            app_message.puback_packet = await asyncio.wait_for(waiter, PUBACK_WAIT)
        except TimeoutError:
            raise TimeoutError(f"no PUBACK for packet id {packet_id}") from None
        finally:
            self._puback_waiters.pop(packet_id, None)
            if app_message.puback_packet is not None or session.clean_session:
                session.inflight_out.pop(packet_id, None)

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


def gated(handler: BrokerProtocolHandler, gate: BrokerGate) -> GatedHandler:
    """amqtt builds the handler with the BrokerProtocolHandler class itself (a classmethod
    reading the CONNECT), so it is turned into the gated one before any PUBLISH."""
    handler.__class__ = GatedHandler
    assert isinstance(handler, GatedHandler)
    handler.gate = gate
    return handler
