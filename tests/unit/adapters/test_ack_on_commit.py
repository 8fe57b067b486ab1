"""iotas' QoS 1 path through gmqtt's packet handler: what reaches `take`, and which PUBACKs
go out, when and on which connection. Real gmqtt client and handler; only the socket is a
list of what would have been written."""

from __future__ import annotations

import asyncio
from typing import Any

from gmqtt import Client

from iotas.adapters.mqtt.adapter import _ack_on_commit


class Closable:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Written:
    """Stands in for gmqtt's connection: records each write, and whether it was closed."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []
        self._transport = Closable()

    def send_package(self, data: bytes) -> None:
        self.packets.append(bytes(data))


def publish(topic: str, mid: int, payload: bytes, properties: bytes = b"") -> tuple[int, bytes]:
    """The fixed-header byte and the rest of a QoS 1 MQTT 5 PUBLISH."""
    name = topic.encode()
    body = len(name).to_bytes(2, "big") + name + mid.to_bytes(2, "big")
    return 0x32, body + bytes([len(properties)]) + properties + payload


def puback(*mids: int) -> bytes:
    return b"".join(b"\x40\x02" + mid.to_bytes(2, "big") for mid in mids)


class Taker:
    def __init__(self) -> None:
        self.taken: list[tuple[str, bytes]] = []
        self.answer: asyncio.Future[Any] | None = None

    def __call__(self, topic: str, payload: bytes) -> asyncio.Future[Any] | None:
        self.taken.append((topic, payload))
        return self.answer


def handler_for(taker: Taker) -> tuple[Any, Client, Written]:
    client = Client("iotas-test", optimistic_acknowledgement=False)
    _ack_on_commit(client, taker)
    connection = Written()
    client._connection = connection
    return client._package_handler, client, connection


async def test_a_message_done_with_at_once_is_acknowledged_at_once() -> None:
    taker = Taker()
    handler, _, connection = handler_for(taker)
    handler._handle_packet(*publish("things/a:1/telemetry", 7, b'{"t": 1}'))
    assert taker.taken == [("things/a:1/telemetry", b'{"t": 1}')]
    assert connection.packets == [puback(7)]


async def test_messages_of_one_commit_are_acknowledged_together_once_it_succeeds() -> None:
    taker = Taker()
    handler, _, connection = handler_for(taker)
    taker.answer = asyncio.get_running_loop().create_future()
    for mid in (1, 2, 300):
        handler._handle_packet(*publish(f"things/a:{mid}/telemetry", mid, b"{}"))
    assert connection.packets == []  # nothing before the commit
    taker.answer.set_result(frozenset())
    await asyncio.sleep(0)
    assert connection.packets == [puback(1, 2, 300)]


async def test_a_failed_commit_acknowledges_nothing_and_drops_the_connection() -> None:
    """The broker sends the messages again on the next connection (MQTT 5 resends only
    then); left unacknowledged on this one, they would hold its in-flight window."""
    taker = Taker()
    handler, _, connection = handler_for(taker)
    taker.answer = asyncio.get_running_loop().create_future()
    handler._handle_packet(*publish("things/a:1/telemetry", 1, b"{}"))
    taker.answer.set_exception(OSError("disk full"))
    await asyncio.sleep(0)
    assert connection.packets == []
    assert handler._owed == {}
    assert connection._transport.closed


async def test_acknowledgements_owed_on_a_lost_connection_are_not_sent_on_the_next() -> None:
    taker = Taker()
    handler, client, old = handler_for(taker)
    taker.answer = asyncio.get_running_loop().create_future()
    handler._handle_packet(*publish("things/a:1/telemetry", 1, b"{}"))
    new = Written()
    client._connection = new  # reconnected: the broker sends message 1 again, maybe as mid 1
    handler._handle_packet(*publish("things/a:2/telemetry", 2, b"{}"))
    taker.answer.set_result(frozenset())
    await asyncio.sleep(0)
    assert old.packets == [] and new.packets == [puback(2)]


async def test_a_publish_with_properties_takes_gmqtts_path_to_the_same_place() -> None:
    taker = Taker()
    handler, _, connection = handler_for(taker)
    payload_format_utf8 = b"\x01\x01"
    handler._handle_packet(*publish("things/a:1/reported", 9, b'{"on": true}', payload_format_utf8))
    assert taker.taken == [("things/a:1/reported", b'{"on": true}')]
    assert connection.packets == [puback(9)]


async def test_a_take_that_raises_is_not_acknowledged_and_does_not_stop_the_next() -> None:
    calls: list[str] = []

    def take(topic: str, payload: bytes) -> asyncio.Future[Any] | None:
        calls.append(topic)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return None

    client = Client("iotas-test", optimistic_acknowledgement=False)
    _ack_on_commit(client, take)
    connection = Written()
    client._connection = connection
    client._package_handler._handle_packet(*publish("things/a:1/telemetry", 1, b"{}"))
    client._package_handler._handle_packet(*publish("things/a:2/telemetry", 2, b"{}"))
    assert connection.packets == [puback(2)]


async def test_after_a_downgrade_to_mqtt_3_1_1_no_byte_is_read_as_properties() -> None:
    """MQTT 3.1.1 has no properties: a payload starting with a zero byte keeps it."""
    from gmqtt.mqtt.constants import MQTTv311

    taker = Taker()
    handler, _, connection = handler_for(taker)
    handler._connection_state.protocol_version = MQTTv311
    name = b"things/a:1/telemetry"
    body = len(name).to_bytes(2, "big") + name + (5).to_bytes(2, "big") + b"\x00{}"
    handler._handle_packet(0x32, body)
    assert taker.taken == [("things/a:1/telemetry", b"\x00{}")]
    assert connection.packets == [puback(5)]
