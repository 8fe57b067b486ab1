"""The topic convention, parsed and built. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from iotas.domain.errors import InvalidInput
from iotas.domain.ids import check_thing_id

PREFIX = "things"
# What iotas subscribes to: everything Things send.
SUBSCRIPTIONS = (
    f"{PREFIX}/+/telemetry",
    f"{PREFIX}/+/reported",
    f"{PREFIX}/+/presence",
    f"{PREFIX}/+/events/+",
    f"{PREFIX}/+/renew",
)
# `renew` is a certificate renewal request; the answer goes to `certificate`.
INBOUND = frozenset({"telemetry", "reported", "presence", "events", "renew"})


@dataclass(frozen=True, slots=True)
class Route:
    thing_id: str
    channel: str
    name: str | None = None


# Every message is routed, and a fleet uses the same few topics per device over and over:
# the routes of the most recent ones are kept (a Route is immutable; refusals are not kept).
@lru_cache(maxsize=32_768)
def parse(topic: str) -> Route:
    """Route an inbound topic, or raise InvalidInput naming what is wrong with it."""
    parts = topic.split("/")
    if len(parts) < 3 or parts[0] != PREFIX:
        raise InvalidInput(f"not a topic of the convention: {topic[:200]!r}")
    thing_id, channel = parts[1], parts[2]
    check_thing_id(thing_id)
    if channel not in INBOUND:
        raise InvalidInput(f"iotas does not take {channel!r} from Things")
    if channel == "events":
        if len(parts) != 4 or not parts[3]:
            raise InvalidInput("events are published on things/{id}/events/{name}")
        return Route(thing_id, channel, parts[3])
    if len(parts) != 3:
        raise InvalidInput(f"unexpected topic levels after {channel!r}")
    return Route(thing_id, channel)


def desired(thing_id: str) -> str:
    return f"{PREFIX}/{thing_id}/desired"


def certificate(thing_id: str) -> str:
    """Where the answer to a certificate renewal goes (not retained)."""
    return f"{PREFIX}/{thing_id}/certificate"


def presence(thing_id: str) -> str:
    return f"{PREFIX}/{thing_id}/presence"
