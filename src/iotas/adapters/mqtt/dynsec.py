"""Mosquitto's dynamic security plugin: the names `iotas broker-config` gives its roles, and
the commands iotas sends it to cut a Thing off at once. Pure: no I/O."""

from __future__ import annotations

from typing import Any, Final

import orjson

# Where the plugin takes commands, and answers them.
CONTROL_TOPIC: Final = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC: Final = "$CONTROL/dynamic-security/v1/response"
# What iotas' own account may publish and subscribe to, to command it.
CONTROL_FILTER: Final = "$CONTROL/dynamic-security/#"
# Each Thing's broker account has a role of its own (Mosquitto 2.0 does not expand %u in
# ACL topics), giving it `things/<id>/#`.
THING_ROLE_PREFIX: Final = "thing/"


def thing_role(thing_id: str) -> str:
    return f"{THING_ROLE_PREFIX}{thing_id}"


def cut_off(thing_id: str, *, for_good: bool) -> bytes:
    """Commands that drop the Thing's session: disabling its account kicks it, re-enabling
    lets a device that has other credentials come back. `for_good` (no credential left)
    keeps it disabled, which refuses its password, and takes its role away, which leaves a
    certificate login (which Mosquitto does not pass to the plugin) without any topic."""
    commands: list[dict[str, Any]] = [{"command": "disableClient", "username": thing_id}]
    if for_good:
        commands.append(
            {"command": "removeClientRole", "username": thing_id, "rolename": thing_role(thing_id)}
        )
    else:
        commands.append({"command": "enableClient", "username": thing_id})
    return orjson.dumps({"commands": commands})


def errors(payload: bytes) -> list[tuple[str, str]]:
    """(command, error) of each command the plugin refused, from its response."""
    try:
        answers = orjson.loads(payload).get("responses", [])
    except (orjson.JSONDecodeError, AttributeError):
        return [("?", "an unreadable response")]
    return [
        (str(a.get("command")), str(a.get("error")))
        for a in answers
        if isinstance(a, dict) and a.get("error")
    ]
