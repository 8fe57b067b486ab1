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
    f"{PREFIX}/+/actions/+/+/result",
)
# `renew` is a certificate renewal request; the answer goes to `certificate`. `actions` are
# the results of invocations (`things/{id}/actions/{name}/{inv}/result`).
INBOUND = frozenset({"telemetry", "reported", "presence", "events", "renew", "actions"})
# What a device subscribes to for the invocations sent to it (docs/commands.md).
ACTIONS_FILTER = "things/{id}/actions/+/+"
# Action names and invocation ids are one topic level each, and bounded.
MAX_LEVEL = 200


@dataclass(frozen=True, slots=True)
class Route:
    thing_id: str
    channel: str
    name: str | None = None
    # The invocation a result answers (channel "actions" only).
    invocation: str | None = None


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
    if channel == "actions":
        return _result(thing_id, parts)
    if len(parts) != 3:
        raise InvalidInput(f"unexpected topic levels after {channel!r}")
    return Route(thing_id, channel)


def _result(thing_id: str, parts: list[str]) -> Route:
    if len(parts) != 6 or parts[5] != "result":
        raise InvalidInput("results are published on things/{id}/actions/{name}/{inv}/result")
    name, invocation = parts[3], parts[4]
    for what, level in (("action name", name), ("invocation id", invocation)):
        if not level or len(level) > MAX_LEVEL or not level.isprintable():
            raise InvalidInput(f"the {what} in a result topic must be 1-{MAX_LEVEL} characters")
    return Route(thing_id, "actions", name, invocation)


def action(thing_id: str, name: str, invocation_id: str) -> str:
    """Where an invocation goes to a device (QoS 1, not retained)."""
    return f"{PREFIX}/{thing_id}/actions/{name}/{invocation_id}"


def result(thing_id: str, name: str, invocation_id: str) -> str:
    """Where a device answers it (also the MQTT 5 response topic iotas sets)."""
    return f"{action(thing_id, name, invocation_id)}/result"


def actions_filter(thing_id: str) -> str:
    return ACTIONS_FILTER.replace("{id}", thing_id)


def action_filters(thing_id: str) -> tuple[str, ...]:
    """The subscriptions by which a device takes its invocations (the convention's, or a
    wider one of its own topics)."""
    return (actions_filter(thing_id), f"{PREFIX}/{thing_id}/actions/#", f"{PREFIX}/{thing_id}/#")


def desired(thing_id: str) -> str:
    return f"{PREFIX}/{thing_id}/desired"


def certificate(thing_id: str) -> str:
    """Where the answer to a certificate renewal goes (not retained)."""
    return f"{PREFIX}/{thing_id}/certificate"


def presence(thing_id: str) -> str:
    return f"{PREFIX}/{thing_id}/presence"
