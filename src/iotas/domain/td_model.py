"""The parts of a W3C WoT Thing Description (TD 1.1) that iotas acts on, as plain values.

`domain.td` parses a validated TD into these; the WoT adapter drives a Thing through them.
Hrefs are absolute (resolved against the TD's `base`); default `op` values and HTTP methods
are filled in as the TD 1.1 specification defines them, so nothing downstream re-derives them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Operation types of TD 1.1 (section 5.3.4.2) that iotas uses.
READ_PROPERTY = "readproperty"
WRITE_PROPERTY = "writeproperty"
OBSERVE_PROPERTY = "observeproperty"
UNOBSERVE_PROPERTY = "unobserveproperty"
READ_ALL_PROPERTIES = "readallproperties"
INVOKE_ACTION = "invokeaction"
SUBSCRIBE_EVENT = "subscribeevent"
UNSUBSCRIBE_EVENT = "unsubscribeevent"


# Default HTTP methods of the TD 1.1 HTTP binding (section 8.3.1), by operation.
HTTP_METHODS = {
    READ_PROPERTY: "GET",
    WRITE_PROPERTY: "PUT",
    OBSERVE_PROPERTY: "GET",
    UNOBSERVE_PROPERTY: "GET",
    READ_ALL_PROPERTIES: "GET",
    "writeallproperties": "PUT",
    "readmultipleproperties": "GET",
    "writemultipleproperties": "PUT",
    INVOKE_ACTION: "POST",
    SUBSCRIBE_EVENT: "GET",
    UNSUBSCRIBE_EVENT: "GET",
}


@dataclass(frozen=True, slots=True)
class SecurityScheme:
    """One entry of `securityDefinitions`: `scheme` is nosec, basic, bearer, ... ; `in` and
    `name` say where the credential goes (header `Authorization` by default)."""

    name: str
    scheme: str
    in_: str = "header"
    key: str | None = None  # the TD's `name`: header, query or cookie name
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Form:
    href: str  # absolute
    op: tuple[str, ...]
    content_type: str = "application/json"
    method: str | None = None  # htv:methodName when given; else see `http_method`
    subprotocol: str | None = None  # longpoll, sse, websub, cov:observe ...
    security: tuple[str, ...] | None = None  # names in securityDefinitions; None = the TD's
    extra: dict[str, Any] = field(default_factory=dict)  # other members (mqv:*, cov:*, ...)

    def http_method(self, op: str) -> str:
        """The method for `op`: the form's own, else the binding's default for the op."""
        return self.method or HTTP_METHODS.get(op, "GET")

    @property
    def scheme(self) -> str:
        """The URI scheme, lowercase: http, https, coap, coaps, mqtt, mqtts ..."""
        return self.href.split(":", 1)[0].lower()


@dataclass(frozen=True, slots=True)
class PropertyAffordance:
    name: str
    schema: dict[str, Any]  # the data schema members (type, minimum, ...), without forms
    forms: tuple[Form, ...]
    read_only: bool = False
    write_only: bool = False
    observable: bool = False

    def forms_for(self, op: str) -> tuple[Form, ...]:
        return tuple(f for f in self.forms if op in f.op)


@dataclass(frozen=True, slots=True)
class ActionAffordance:
    name: str
    input: dict[str, Any] | None
    output: dict[str, Any] | None
    forms: tuple[Form, ...]
    safe: bool = False
    idempotent: bool = False

    def forms_for(self, op: str) -> tuple[Form, ...]:
        return tuple(f for f in self.forms if op in f.op)


@dataclass(frozen=True, slots=True)
class EventAffordance:
    name: str
    data: dict[str, Any] | None
    forms: tuple[Form, ...]

    def forms_for(self, op: str) -> tuple[Form, ...]:
        return tuple(f for f in self.forms if op in f.op)


@dataclass(frozen=True, slots=True)
class Interactions:
    """What a TD offers: its id and title, the security in force for forms that name none,
    and its affordances by name."""

    id: str | None
    title: str
    base: str | None
    security: tuple[str, ...]
    security_definitions: dict[str, SecurityScheme]
    properties: dict[str, PropertyAffordance]
    actions: dict[str, ActionAffordance]
    events: dict[str, EventAffordance]
    forms: tuple[Form, ...] = ()  # top-level forms (readallproperties, ...)

    def schemes_for(self, form: Form) -> tuple[SecurityScheme, ...]:
        names = self.security if form.security is None else form.security
        return tuple(self.security_definitions[n] for n in names if n in self.security_definitions)
