"""Thing ids: `namespace:name`."""

from __future__ import annotations

import hashlib
import re

from iotas.domain.errors import InvalidInput

# Namespaces are DNS-label-like so they can appear in topics, URLs and certificate subjects.
# Names allow a little more (dots, underscores) because device serials use them; no `/`, `+`
# or `#`, since the id is also an MQTT topic level.
_NAMESPACE = r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?"
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9_])?"
THING_ID_RE = re.compile(rf"^(?P<namespace>{_NAMESPACE}):(?P<name>{_NAME})$")
NAMESPACE_RE = re.compile(rf"^{_NAMESPACE}$")

ID_RULE = (
    "a Thing id is 'namespace:name': the namespace is 1-64 lowercase letters, digits and '-' "
    "(not at either end); the name is 1-128 letters, digits, '.', '_' and '-', starting with "
    "a letter or digit"
)


def parse_thing_id(value: object) -> tuple[str, str]:
    """Return (namespace, name) or raise InvalidInput saying what a valid id looks like."""
    if not isinstance(value, str):
        raise InvalidInput(f"the Thing id must be a string; {ID_RULE}")
    match = THING_ID_RE.match(value)
    if match is None:
        raise InvalidInput(f"{value[:200]!r} is not a valid Thing id: {ID_RULE}", field="id")
    return match["namespace"], match["name"]


def check_thing_id(value: object) -> str:
    parse_thing_id(value)
    assert isinstance(value, str)
    return value


def namespace_of(thing_id: str) -> str:
    return thing_id.split(":", 1)[0]


# Thing Descriptions name themselves with any URI (`urn:dev:ops:32473-lamp-1`,
# `https://example.com/things/lamp`); those that are not Thing ids get one derived from them.
URI_NAMESPACE = "wot"
_NAME_CHAR = re.compile(r"[^A-Za-z0-9._-]+")


def thing_id_for_uri(uri: str) -> str:
    """The Thing id of a TD whose `id` is `uri`: the URI itself when it is a Thing id, else
    `wot:<readable tail>-<10 hex of its sha256>`: stable, so the same URI always finds the same
    Thing, and distinct for distinct URIs."""
    if THING_ID_RE.match(uri):
        return uri
    tail = uri.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    readable = _NAME_CHAR.sub("-", tail).strip("-._")[:100] or "thing"
    digest = hashlib.sha256(uri.encode()).hexdigest()[:10]
    return f"{URI_NAMESPACE}:{readable}-{digest}"
