"""The first packet of a connection, read whole before amqtt parses it.

amqtt 0.12 speaks MQTT 3.1.1 only, and parses a CONNECT field by field from the socket, not
within the packet's length: an MQTT 5 CONNECT (its properties after the keep-alive) makes it
wait for bytes that never come, and the client hangs without a CONNACK. Here the packet is
read by its length first; one of another protocol level is answered at once with the refusal
that its client understands, then closed: MQTT 5's CONNACK with reason code 0x84 (Unsupported
Protocol Version), and for any other level 3.1.1's return code 0x01 (unacceptable protocol
level), as both specifications say.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Final

MQTT_311: Final = 4
MQTT_5: Final = 5
CONNECT_TYPE: Final = 1
# A CONNECT carries a client id, a user name, a password and a last will: a few kilobytes at
# most in practice. Larger first packets are not read into memory.
MAX_CONNECT: Final = 256 * 1024
# A connection that sends no whole CONNECT within this holds no connection slot longer.
CONNECT_WAIT: Final = 30.0

REFUSE_V5: Final = bytes([0x20, 0x03, 0x00, 0x84, 0x00])  # flags, reason 0x84, no properties
REFUSE_V311: Final = bytes([0x20, 0x02, 0x00, 0x01])  # flags, return code 0x01


class NotConnect(Exception):
    """The first packet is not a CONNECT of any MQTT version this module can read."""


@dataclass(frozen=True, slots=True)
class FirstPacket:
    raw: bytes  # the whole packet, fixed header included
    level: int  # the protocol level: 4 is MQTT 3.1.1, 5 is MQTT 5


async def read_connect(reader: Any) -> FirstPacket:
    """The first packet, whole (amqtt's reader adapter: `read(n)` reads exactly n bytes).
    Raises NotConnect, or EOFError when the client goes away."""
    first = await reader.read(1)
    if not first:
        raise EOFError
    if first[0] >> 4 != CONNECT_TYPE:
        raise NotConnect(f"the first packet is of type {first[0] >> 4}, not CONNECT")
    header = bytearray(first)
    length, multiplier = 0, 1
    for _ in range(4):
        byte = await reader.read(1)
        if not byte:
            raise EOFError
        header += byte
        length += (byte[0] & 0x7F) * multiplier
        if not byte[0] & 0x80:
            break
        multiplier *= 128
    else:
        raise NotConnect("malformed remaining length")
    if length > MAX_CONNECT:
        raise NotConnect(f"a CONNECT of {length} bytes")
    body = await reader.read(length) if length else b""
    if len(body) != length:
        raise EOFError
    return FirstPacket(bytes(header) + body, _level(body))


def _level(body: bytes) -> int:
    """The protocol level after the protocol name (`MQTT`, or `MQIsdp` for 3.1)."""
    if len(body) < 2:
        raise NotConnect("a CONNECT without a protocol name")
    name_end = 2 + int.from_bytes(body[:2], "big")
    if len(body) <= name_end:
        raise NotConnect("a CONNECT without a protocol level")
    return body[name_end]


def refusal(level: int) -> bytes:
    """The CONNACK refusing protocol `level`, in the form its clients read."""
    return REFUSE_V5 if level == MQTT_5 else REFUSE_V311


async def first_packet(reader: Any) -> FirstPacket:
    """`read_connect`, bounded by CONNECT_WAIT (TimeoutError)."""
    return await asyncio.wait_for(read_connect(reader), CONNECT_WAIT)
