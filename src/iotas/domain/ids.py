"""Thing ids: `namespace:name`."""

from __future__ import annotations

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
