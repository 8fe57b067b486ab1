"""The MQTT plumbing under `Device`: URLs, backoff, and one gmqtt connection. Private."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import gmqtt

PORTS = {"mqtt": 1883, "mqtts": 8883}


class _ExpectedLoss(logging.Filter):
    """gmqtt logs every lost connection as a warning with a traceback; for a device that
    reconnects on its own a lost connection is routine (the device counts it), so only that
    record is dropped, and only from gmqtt's protocol logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "[EXC: CONN LOST]"


logging.getLogger("gmqtt.mqtt.protocol").addFilter(_ExpectedLoss())
# MQTT 3.1.1 CONNACK codes no retry can fix on a first connect: bad protocol, client id
# rejected, bad user name or password, not authorised. (3, "server unavailable", is transient.)
REFUSALS = {
    1: "unacceptable protocol",
    2: "client id rejected",
    4: "bad user name or password",
    5: "not authorised",
}


@dataclass(slots=True)
class Outgoing:
    """A message on its way: queued, then in flight until acknowledged."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    done: asyncio.Future[None] | None
    # Presence is per connection: never queued again, never counted.
    control: bool = False


def backoff_delay(attempt: int, *, initial: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait before connection attempt `attempt` (1 = the first retry): doubling
    from `initial` up to `cap`, with "equal jitter" (a random point in the upper half), so a
    fleet that lost the same broker does not come back in one burst, yet nobody retries at
    once."""
    ceiling = min(cap, initial * 2 ** min(attempt - 1, 30))
    return rng.uniform(ceiling / 2, ceiling)


def parse_url(url: str) -> tuple[str, int, bool]:
    """`mqtt://host[:port]` or `mqtts://host[:port]` -> (host, port, tls)."""
    parts = urlsplit(url)
    if parts.scheme not in PORTS or not parts.hostname:
        raise ValueError(
            f"{url!r} is not an MQTT URL: use mqtt://host[:port] or mqtts://host[:port]"
        )
    if parts.username or parts.password:
        raise ValueError("give the credentials as the Thing id and secret, not in the URL")
    if parts.path not in ("", "/"):
        raise ValueError(f"{url!r}: an MQTT URL has no path")
    return parts.hostname, parts.port or PORTS[parts.scheme], parts.scheme == "mqtts"


class AckTracker:
    """gmqtt's in-flight store, repurposed: gmqtt tells it the packet id of each QoS 1 publish
    (`push_message`, called inside `publish`) and when the PUBACK came (`remove_message_by_mid`).
    gmqtt's own replay is not used: every connection is a clean session and the Device sends
    unacknowledged messages again itself."""

    def __init__(self) -> None:
        self.last_mid = 0
        self.on_ack: Callable[[int], None] = _ignore

    def push_message(self, mid: int, raw_package: bytes) -> None:
        self.last_mid = mid

    def remove_message_by_mid(self, mid: int) -> None:
        self.on_ack(mid)

    @property
    def is_empty(self) -> bool:
        return True

    async def wait_empty(self) -> None:
        return

    def clear(self) -> None:
        return

    def get_all(self) -> list[tuple[int, bytes]]:
        return []


class GmqttClient(gmqtt.Client):  # type: ignore[misc]  # gmqtt is untyped
    async def reconnect(self, delay: bool = False) -> None:
        """gmqtt would reconnect by itself (fixed delay, persistent session); the Device does
        it instead (backoff with jitter, clean session, its own queue), so this is off."""


class Link:
    """One MQTT connection: a fresh gmqtt client each time, so no state leaks across."""

    def __init__(self, client: GmqttClient, tracker: AckTracker) -> None:
        self.client = client
        self.tracker = tracker
        self.inflight: dict[int, Outgoing] = {}
        self.lost = asyncio.Event()
        self.ready = False

    def usable(self) -> bool:
        return self.ready and not self.lost.is_set() and bool(self.client.is_connected)

    def abort(self) -> None:
        # gmqtt has no public way to drop a socket without DISCONNECT.
        connection = self.client._connection
        if connection is not None:
            connection._transport.abort()


def _ignore(mid: int) -> None:
    return
