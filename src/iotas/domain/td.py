"""W3C WoT Thing Descriptions (TD 1.1): validation, the TD of a native Thing, and parsing a
TD into the interactions iotas acts on (`td_model`).

Validation is the official TD 1.1 JSON Schema (shipped in `schemas/`, the W3C file
unchanged) plus bounds on size and shape, with an error that names the offending member as a
JSON Pointer. The generated TD of a native Thing is for consumers: its forms are iotas' HTTP
API (read, write, long-poll and Server-Sent Events streams, actions through the invocation
queue; docs/wot.md), never the device's own MQTT topics (docs/mqtt.md).
"""

from __future__ import annotations

import json
import re
from functools import cache, lru_cache
from importlib import resources
from typing import Any
from urllib.parse import quote, urljoin

import jsonschema
import jsonschema_rs
import orjson

from iotas.domain import td_actions
from iotas.domain import td_model as m
from iotas.domain.errors import InvalidInput, IotasError
from iotas.domain.merge_patch import JSONObject
from iotas.domain.things import Thing

TD_CONTEXT = "https://www.w3.org/2022/wot/td/v1.1"
MAX_TD_BYTES = 1024 * 1024
MAX_AFFORDANCES = 1000
MAX_DEPTH = 32
MAX_LISTED_ERRORS = 20
AFFORDANCE_KINDS = ("properties", "actions", "events")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S*$")
_HTTP = ("http", "https")
# Members of a form that td_model.Form holds in fields of its own.
_FORM_FIELDS = frozenset({"href", "op", "contentType", "htv:methodName", "subprotocol", "security"})


@cache
def _schema() -> Any:
    text = resources.files("iotas.domain").joinpath("schemas/td-1.1-validation.json")
    return json.loads(text.read_text(encoding="utf-8"))


@cache
def _validator() -> Any:
    """The reference validator (jsonschema): it finds and names the errors."""
    schema = _schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@cache
def _fast_validator() -> Any:
    """jsonschema-rs over the same schema, for the yes/no: about 0.02 ms a TD against
    1.4-11 ms for jsonschema, which made validation most of an adoption's CPU (decision 67).
    Formats are not asserted, as the reference validator (given no format checker) does not."""
    return jsonschema_rs.validator_for(_schema(), validate_formats=False)


def validate_td(doc: object) -> JSONObject:
    """Return `doc` if it is a valid TD 1.1 within iotas' bounds; otherwise raise InvalidInput
    naming the first offending member as a JSON Pointer (`field`) and how many more there are."""
    if not isinstance(doc, dict):
        raise InvalidInput("a Thing Description must be a JSON object", field="")
    try:
        size = len(orjson.dumps(doc))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidInput(f"the Thing Description is not plain JSON: {exc}", field="") from None
    if size > MAX_TD_BYTES:
        raise InvalidInput(f"a Thing Description may be at most {MAX_TD_BYTES} bytes", field="")
    if _depth(doc) > MAX_DEPTH:
        raise InvalidInput(f"a Thing Description may nest at most {MAX_DEPTH} deep", field="")
    count = sum(len(doc[k]) for k in AFFORDANCE_KINDS if isinstance(doc.get(k), dict))
    if count > MAX_AFFORDANCES:
        raise InvalidInput(
            f"a Thing Description may have at most {MAX_AFFORDANCES} affordances", field=""
        )
    # The fast validator says whether the TD is valid; only a TD it refuses goes through the
    # reference validator, which names the errors (and has the last word: no errors, valid).
    errors = [] if _fast_validator().is_valid(doc) else list(_validator().iter_errors(doc))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        # `best_match` picks the deepest, most specific error of a oneOf/anyOf; its context
        # often says more than the combinator's own message.
        pointer = _error_pointer(best)
        message = _short(best.message)
        more = len(errors) - 1
        tail = f" ({more} more problem{'s' if more != 1 else ''})" if more else ""
        # WoT Discovery (7.3.2.1.4) asks for `validationErrors`: [{field, description}].
        others = sorted((e for e in errors if e is not best), key=lambda e: list(e.absolute_path))
        listed = [
            {"field": _error_pointer(e), "description": _short(e.message)}
            for e in [best, *others][:MAX_LISTED_ERRORS]
        ]
        raise InvalidInput(
            f"the Thing Description is not valid TD 1.1 at {pointer or '/'}: {message}{tail}",
            field=pointer,
            validationErrors=listed,
        )
    td_id = doc.get("id")
    if td_id is not None and not _URI.match(td_id):
        raise InvalidInput(f"/id must be a URI, not {str(td_id)[:200]!r}", field="/id")
    for name in _security_names(doc.get("security")):
        if name not in doc["securityDefinitions"]:
            raise InvalidInput(
                f"/security names {name!r}, which securityDefinitions does not define",
                field="/security",
            )
    return doc


def has_own_forms(description: JSONObject | None) -> bool:
    """A TD with forms of its own (a third-party Thing's), rather than a model without any.
    (A TD registered through the directory is served as given even without forms: the
    directory knows it from its registration, not from this.)"""
    if not description:
        return False
    if description.get("forms"):
        return True
    for kind in AFFORDANCE_KINDS:
        affordances = description.get(kind)
        if isinstance(affordances, dict) and any(
            isinstance(a, dict) and a.get("forms") for a in affordances.values()
        ):
            return True
    return False


def served_td(thing: Thing, *, http_base: str, registered: bool = False) -> JSONObject:
    """The TD the directory serves: a TD registered through the directory (`registered`) or
    a third-party TD with forms as given, else the one generated for a native Thing."""
    if thing.description is not None and (registered or has_own_forms(thing.description)):
        return dict(thing.description)
    return native_td(thing, http_base=http_base)


# -- generating ------------------------------------------------------------------------------

# What a TD 1.0 consumer (node-wot's TD schema) wants first in `@context`, then the 1.1 URI;
# every prefix a generated TD uses is declared after them.
TD_CONTEXT_V1 = "https://www.w3.org/2019/wot/td/v1"
HTV = "http://www.w3.org/2011/http#"
# How long a stream ticket (an EventSource client's credential, docs/wot.md) opens streams.
TICKET_SECONDS = 60
TELEMETRY_EVENT = "telemetry"
TELEMETRY_DATA: JSONObject = {
    "description": "One telemetry record as the device sent it, with its time",
    "type": "object",
    "properties": {"ts": {"type": "string", "format": "date-time"}},
    "required": ["ts"],
}
# Members of a model's property that say how the consumer may use it, not what the value is.
_NOT_VALUE_SCHEMA = frozenset(
    {"forms", "uriVariables", "observable", "readOnly", "writeOnly", "@type", "titles"}
)


def native_td(thing: Thing, *, http_base: str) -> JSONObject:
    """The TD 1.1 of a Thing on iotas' own convention, for consumers: every form is iotas'
    HTTP API (docs/wot.md). Its stored description, if any, is a model: it supplies `@type`,
    data schemas, events, actions (invoked through the invocation queue: `td_actions`) and
    links, never forms. (No MQTT forms: the MQTT topics are the
    device's side, described in docs/mqtt.md, and no consumer may use them.)"""
    model = thing.description or {}
    api = f"{http_base}/api/v1/things/{quote(thing.id, safe=':')}"
    title = thing.attributes.get("title")
    doc: JSONObject = {
        "@context": _context(model.get("@context")),
        "id": thing.id,
        "title": title if isinstance(title, str) and title else thing.id,
    }
    if "@type" in model:
        doc["@type"] = model["@type"]
    description = thing.attributes.get("description")
    if isinstance(description, str) and description:
        doc["description"] = description
    doc["securityDefinitions"] = {
        "bearer": {
            "scheme": "bearer",
            "in": "header",
            "name": "Authorization",
            "description": "An iotas API token",
        },
        "ticket": {
            "scheme": "apikey",
            "in": "query",
            "name": "ticket",
            "description": (
                "For clients that cannot send headers (EventSource): a stream ticket from "
                f"GET {api}/stream-ticket with the bearer token, valid {TICKET_SECONDS} s, "
                "for this Thing's streams only"
            ),
        },
        "bearer_or_ticket": {"scheme": "combo", "oneOf": ["bearer", "ticket"]},
    }
    doc["security"] = ["bearer"]
    doc["properties"] = {
        name: {**schema, "observable": True, "forms": _property_forms(api, name, schema)}
        for name, schema in property_schemas(thing).items()
    }
    doc["events"] = {
        name: {**schema, "forms": _stream_forms(f"{api}/events/{quote(name, safe='')}", "event")}
        for name, schema in _event_schemas(model).items()
    }
    actions = td_actions.action_affordances(_model_affordances(model, "actions"), api=api)
    if actions:
        doc["actions"] = actions
        doc["schemaDefinitions"] = td_actions.SCHEMA_DEFINITIONS
    doc["forms"] = [
        {
            "href": f"{api}/properties",
            "op": ["readallproperties"],
            "htv:methodName": "GET",
            "contentType": "application/json",
        },
        *([td_actions.query_all_form(api)] if actions else []),
    ]
    links = [
        {"rel": link["rel"], "href": f"{http_base}/api/v1/things/{quote(link['target'], safe=':')}"}
        for link in thing.links
    ]
    model_links = model.get("links")
    if isinstance(model_links, list):
        links += [link for link in model_links if isinstance(link, dict) and "href" in link]
    if links:
        doc["links"] = links
    return doc


def _context(given: object) -> Any:
    """The TD 1.0 URI, the 1.1 URI, then the model's other entries and the `htv` prefix."""
    extra: list[Any] = []
    if isinstance(given, list):
        extra = [e for e in given if e not in (TD_CONTEXT, TD_CONTEXT_V1)]
    prefixes: dict[str, Any] = {"htv": HTV}
    for entry in extra:
        if isinstance(entry, dict):
            prefixes.update({k: v for k, v in entry.items() if k != "htv"})
    return [
        TD_CONTEXT_V1,
        TD_CONTEXT,
        *(e for e in extra if not isinstance(e, dict)),
        prefixes,
    ]


def _model_affordances(model: JSONObject, kind: str) -> dict[str, JSONObject]:
    """A model's affordances without their forms (and any member iotas sets itself)."""
    found = model.get(kind)
    if not isinstance(found, dict):
        return {}
    return {
        name: {k: v for k, v in value.items() if k not in ("forms", "observable")}
        for name, value in found.items()
        if isinstance(value, dict)
    }


def property_schemas(thing: Thing) -> dict[str, JSONObject]:
    """Each property of a native Thing's TD without its forms: those its model declares, then
    every other top-level key of its desired and reported state (a key only ever reported is
    `readOnly`)."""
    declared = _model_affordances(thing.description or {}, "properties")
    desired, reported = thing.twin.desired, thing.twin.reported
    out = dict(declared)
    for name in {**desired, **reported}:
        if name in out:
            continue
        schema = _schema_of(reported.get(name, desired.get(name)))
        if name not in desired:
            schema["readOnly"] = True
        out[name] = schema
    return out


def _schema_of(value: Any) -> JSONObject:
    """A data schema guessed from one value: loose enough that the next value of the same
    kind fits (any number, any object), since it constrains writes."""
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int | float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        return {"type": "array"}
    if isinstance(value, dict):
        return {"type": "object"}
    # null: nothing to go by. (A schema needs a type, or a oneOf, for node-wot to read the
    # value at all.)
    return {"oneOf": [{"type": t} for t in ("boolean", "number", "string", "array", "object")]}


def _property_forms(api: str, name: str, schema: JSONObject) -> list[JSONObject]:
    href = f"{api}/properties/{quote(name, safe='')}"
    read_only = bool(schema.get("readOnly"))
    return [
        {
            "href": href,
            "op": ["readproperty"] if read_only else ["readproperty", "writeproperty"],
            "contentType": "application/json",
        },
        *_stream_forms(href, "property"),
    ]


def _stream_forms(href: str, kind: str) -> list[JSONObject]:
    """Long poll first (node-wot's and wotpy's default, with the bearer header), then
    Server-Sent Events (also for EventSource clients, with a stream ticket)."""
    ops = ["observeproperty", "unobserveproperty"]
    if kind == "event":
        ops = ["subscribeevent", "unsubscribeevent"]
    return [
        {
            "href": f"{href}/next",
            "op": ops,
            "subprotocol": "longpoll",
            # No htv:methodName (GET is the default): node-wot's long poll starts with a
            # HEAD, and a form's method would turn it into a GET that waits.
            "contentType": "application/json",
        },
        {
            "href": f"{href}/stream",
            "op": ops,
            "subprotocol": "sse",
            # Each event's data is JSON; node-wot decodes it by the form's contentType.
            "contentType": "application/json",
            "security": ["bearer_or_ticket"],
        },
    ]


def _event_schemas(model: JSONObject) -> dict[str, JSONObject]:
    declared = _model_affordances(model, "events")
    declared.setdefault(TELEMETRY_EVENT, {"data": TELEMETRY_DATA})
    return declared


# -- writing through a property form ----------------------------------------------------------


class PropertyReadOnly(IotasError):
    status = 405
    title = "Method not allowed"
    type_slug = "read-only-property"


class PropertyValueInvalid(IotasError):
    status = 422
    title = "Unprocessable content"
    type_slug = "property-value"


def property_schema(thing: Thing, name: str) -> JSONObject | None:
    """The data schema of the property `name` in the Thing's TD (its own, or the generated
    one), None when the TD has no such property."""
    if has_own_forms(thing.description):
        assert thing.description is not None
        found = (thing.description.get("properties") or {}).get(name)
        return found if isinstance(found, dict) else None
    return property_schemas(thing).get(name)


def check_property_write(schema: JSONObject, name: str, value: Any) -> None:
    """Refuse a write the TD does not allow: `PropertyReadOnly` for a readOnly property,
    `PropertyValueInvalid` naming the first violation of its data schema."""
    if schema.get("readOnly"):
        raise PropertyReadOnly(
            f"the property {name[:200]!r} is readOnly in the Thing's TD: it can be read, "
            "not written"
        )
    violation = data_violation(schema, value)
    if violation is not None:
        pointer, message, keyword = violation
        raise PropertyValueInvalid(
            f"the value does not fit the data schema of the property {name[:200]!r} "
            f"at {pointer or 'its top level'}: {message}",
            field=pointer,
            keyword=keyword,
        )


def data_violation(schema: JSONObject, value: Any) -> tuple[str, str, str] | None:
    """The first way `value` breaks the TD data schema `schema`, as (JSON Pointer to the
    member, message, JSON Schema keyword); None when it fits (or the schema is not valid
    JSON Schema, which then constrains nothing)."""
    validator = _value_validator(orjson.dumps(_value_schema(schema)))
    if validator is None:
        return None
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    return _error_pointer(error), _short(error.message), str(error.validator)


def action_affordance(thing: Thing, name: str) -> JSONObject | None:
    """The action `name` of the Thing: from its TD (an adopted Thing's) or from the Thing
    Model given as its `description` (a native Thing's); None when neither declares it."""
    actions = (thing.description or {}).get("actions")
    found = actions.get(name) if isinstance(actions, dict) else None
    return found if isinstance(found, dict) else None


def _value_schema(schema: Any) -> Any:
    """The property's data schema as JSON Schema: TD-only members dropped, and empty
    combinators (wotpy writes `"oneOf": []`, which nothing could satisfy) left out."""
    if isinstance(schema, list):
        return [_value_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    return {
        k: _value_schema(v)
        for k, v in schema.items()
        if k not in _NOT_VALUE_SCHEMA and not (k in ("oneOf", "anyOf", "allOf") and v == [])
    }


@lru_cache(maxsize=1024)
def _value_validator(schema_json: bytes) -> Any:
    """A validator for one data schema (TD data schemas are JSON Schema draft 7 terms); None
    when the schema itself is not valid JSON Schema: it then constrains nothing here."""
    schema = orjson.loads(schema_json)
    try:
        jsonschema.Draft7Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError:
        return None
    return jsonschema.Draft7Validator(schema)


# -- parsing ---------------------------------------------------------------------------------


def interactions(doc: JSONObject) -> m.Interactions:
    """The affordances of a validated TD, hrefs absolute, defaults filled in."""
    base = doc.get("base") if isinstance(doc.get("base"), str) else None
    definitions = {
        name: _scheme(name, value)
        for name, value in (doc.get("securityDefinitions") or {}).items()
        if isinstance(value, dict)
    }
    properties: dict[str, m.PropertyAffordance] = {}
    for name, p in (doc.get("properties") or {}).items():
        read_only, write_only = bool(p.get("readOnly")), bool(p.get("writeOnly"))
        default_op = [m.READ_PROPERTY, m.WRITE_PROPERTY]
        if read_only:
            default_op = [m.READ_PROPERTY]
        elif write_only:
            default_op = [m.WRITE_PROPERTY]
        properties[name] = m.PropertyAffordance(
            name=name,
            schema={k: v for k, v in p.items() if k not in ("forms", "uriVariables")},
            forms=tuple(_form(f, base, default_op) for f in p.get("forms", [])),
            read_only=read_only,
            write_only=write_only,
            observable=bool(p.get("observable")),
        )
    actions = {
        name: m.ActionAffordance(
            name=name,
            input=a.get("input"),
            output=a.get("output"),
            forms=tuple(_form(f, base, [m.INVOKE_ACTION]) for f in a.get("forms", [])),
            safe=bool(a.get("safe")),
            idempotent=bool(a.get("idempotent")),
        )
        for name, a in (doc.get("actions") or {}).items()
    }
    events = {
        name: m.EventAffordance(
            name=name,
            data=e.get("data"),
            forms=tuple(
                _form(f, base, [m.SUBSCRIBE_EVENT, m.UNSUBSCRIBE_EVENT]) for f in e.get("forms", [])
            ),
        )
        for name, e in (doc.get("events") or {}).items()
    }
    title = doc.get("title")
    return m.Interactions(
        id=doc.get("id"),
        title=title if isinstance(title, str) else "",
        base=base,
        security=_security_names(doc.get("security")),
        security_definitions=definitions,
        properties=properties,
        actions=actions,
        events=events,
        forms=tuple(_form(f, base, []) for f in doc.get("forms", [])),
    )


def _form(form: JSONObject, base: str | None, default_op: list[str]) -> m.Form:
    href = form["href"]
    if base and not _URI.match(href):
        # urljoin would percent-encode nothing but drops a URI template's braces intact.
        href = urljoin(base, href)
    op = form.get("op", default_op)
    ops = (op,) if isinstance(op, str) else tuple(op)
    # Only an explicit method: a form for several operations takes each one's default
    # (td_model.http_method), so it is not fixed here.
    method = form.get("htv:methodName")
    scheme = href.split(":", 1)[0].lower()
    subprotocol = form.get("subprotocol")
    if (
        subprotocol is None
        and scheme in _HTTP
        and ({m.OBSERVE_PROPERTY, m.SUBSCRIBE_EVENT} & set(ops))
    ):
        subprotocol = "longpoll"
    security = form.get("security")
    return m.Form(
        href=href,
        op=ops,
        content_type=form.get("contentType", "application/json"),
        method=method,
        subprotocol=subprotocol,
        security=None if security is None else _security_names(security),
        extra={k: v for k, v in form.items() if k not in _FORM_FIELDS},
    )


def _scheme(name: str, value: JSONObject) -> m.SecurityScheme:
    known = ("scheme", "in", "name")
    return m.SecurityScheme(
        name=name,
        scheme=str(value.get("scheme", "")),
        in_=str(value.get("in", "header")),
        key=value.get("name") if isinstance(value.get("name"), str) else None,
        extra={k: v for k, v in value.items() if k not in known},
    )


def _security_names(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(v for v in value if isinstance(v, str))
    return ()


def _pointer(path: Any) -> str:
    """RFC 6901: "" is the whole document."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _error_pointer(error: Any) -> str:
    """Where a schema error is: for a missing required member, that member (`/title`), not
    the object that lacks it."""
    path = list(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [
            name
            for name in error.validator_value
            if name not in error.instance and repr(name) in error.message
        ]
        if missing:
            path.append(missing[0])
    return _pointer(path)


def _short(message: str) -> str:
    return message if len(message) <= 300 else message[:300] + "..."


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level
