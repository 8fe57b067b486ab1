"""W3C WoT Thing Descriptions (TD 1.1): validation, the TD of a native Thing, and parsing a
TD into the interactions iotas acts on (`td_model`).

Validation is the official TD 1.1 JSON Schema (shipped in `schemas/`, the W3C file
unchanged) plus bounds on size and shape, with an error that names the offending member as a
JSON Pointer. The generated TD of a native Thing describes iotas' own interfaces to it: HTTP
forms on the API and MQTT forms of the native convention (docs/mqtt.md, docs/wot.md).
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import quote, urljoin

import jsonschema
import orjson

from iotas.domain import td_model as m
from iotas.domain.errors import InvalidInput
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
def _validator() -> Any:
    text = resources.files("iotas.domain").joinpath("schemas/td-1.1-validation.json")
    schema = json.loads(text.read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


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
    errors = list(_validator().iter_errors(doc))
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


def served_td(
    thing: Thing, *, http_base: str, mqtt_base: str | None, registered: bool = False
) -> JSONObject:
    """The TD the directory serves: a TD registered through the directory (`registered`) or
    a third-party TD with forms as given, else the one generated for a native Thing."""
    if thing.description is not None and (registered or has_own_forms(thing.description)):
        return dict(thing.description)
    return native_td(thing, http_base=http_base, mqtt_base=mqtt_base)


# -- generating ------------------------------------------------------------------------------


def native_td(thing: Thing, *, http_base: str, mqtt_base: str | None) -> JSONObject:
    """The TD 1.1 of a Thing on iotas' own convention. Its stored description, if any, is a
    model: it supplies `@type`, data schemas, actions, events and links, never forms."""
    model = thing.description or {}
    tid = quote(thing.id, safe=":")
    api = f"{http_base}/api/v1/things/{tid}"
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
        "bearer": {"scheme": "bearer", "in": "header", "name": "Authorization"},
        "basic": {"scheme": "basic", "in": "header"},
    }
    doc["security"] = ["bearer"]
    doc["properties"] = _properties(thing, model, api, tid, mqtt_base)
    actions = _model_affordances(model, "actions")
    if actions:
        doc["actions"] = {
            name: {**schema, "forms": _action_forms(tid, name, mqtt_base)}
            for name, schema in actions.items()
            if _action_forms(tid, name, mqtt_base)
        }
        if not doc["actions"]:
            del doc["actions"]
    doc["events"] = _events(model, http_base, tid, thing.id, mqtt_base)
    doc["forms"] = [
        {
            "href": f"{api}/properties",
            "op": ["readallproperties"],
            "htv:methodName": "GET",
            "contentType": "application/json",
        }
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
    if isinstance(given, list) and given and given[0] == TD_CONTEXT:
        return given
    return TD_CONTEXT


def _model_affordances(model: JSONObject, kind: str) -> dict[str, JSONObject]:
    """A model's affordances without their forms (and any member iotas sets itself)."""
    found = model.get(kind)
    if not isinstance(found, dict):
        return {}
    return {
        name: {k: v for k, v in value.items() if k != "forms"}
        for name, value in found.items()
        if isinstance(value, dict)
    }


def _properties(
    thing: Thing, model: JSONObject, api: str, tid: str, mqtt_base: str | None
) -> JSONObject:
    declared = _model_affordances(model, "properties")
    desired, reported = thing.twin.desired, thing.twin.reported
    names = list(declared) + [n for n in {**desired, **reported} if n not in declared]
    out: JSONObject = {}
    for name in names:
        schema = declared.get(name)
        if schema is None:
            value = reported.get(name, desired.get(name))
            schema = _schema_of(value)
            if name not in desired:
                schema["readOnly"] = True
        read_only = bool(schema.get("readOnly"))
        href = f"{api}/properties/{quote(name, safe='')}"
        forms: list[JSONObject] = [
            {
                "href": href,
                "op": ["readproperty"] if read_only else ["readproperty", "writeproperty"],
                "contentType": "application/json",
            }
        ]
        if mqtt_base:
            forms.append(
                {
                    "href": f"{mqtt_base}/things/{tid}/reported",
                    "op": ["observeproperty"],
                    "contentType": "application/json",
                    "mqv:controlPacket": "subscribe",
                    "security": ["basic"],
                }
            )
        out[name] = {**schema, "observable": bool(mqtt_base), "forms": forms}
    return out


def _schema_of(value: Any) -> JSONObject:
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, str):
        return {"type": "string"}
    if isinstance(value, list):
        return {"type": "array"}
    if isinstance(value, dict):
        return {"type": "object"}
    return {"type": "null"}


def _action_forms(tid: str, name: str, mqtt_base: str | None) -> list[JSONObject]:
    if not mqtt_base:
        return []
    # The convention's topic is things/{id}/actions/{name}/{invocation id}: iotas appends
    # the id when it sends an invocation, so the form names the action's topic root.
    return [
        {
            "href": f"{mqtt_base}/things/{tid}/actions/{quote(name, safe='')}",
            "op": ["invokeaction"],
            "contentType": "application/json",
            "mqv:controlPacket": "publish",
            "security": ["basic"],
        }
    ]


def _events(
    model: JSONObject, http_base: str, tid: str, thing_id: str, mqtt_base: str | None
) -> JSONObject:
    declared = _model_affordances(model, "events")
    declared.setdefault(
        "telemetry",
        {"description": "Telemetry samples, as the device sends them", "data": {"type": "object"}},
    )
    out: JSONObject = {}
    query = quote(f'id == "{thing_id}"', safe="")
    for name, schema in declared.items():
        forms: list[JSONObject] = [
            {
                "href": f"{http_base}/api/v1/events?types=thing_event&q={query}",
                "op": ["subscribeevent"],
                "subprotocol": "sse",
                "contentType": "text/event-stream",
            }
        ]
        if mqtt_base:
            topic = "telemetry" if name == "telemetry" else f"events/{quote(name, safe='')}"
            forms.append(
                {
                    "href": f"{mqtt_base}/things/{tid}/{topic}",
                    "op": ["subscribeevent"],
                    "contentType": "application/json",
                    "mqv:controlPacket": "subscribe",
                    "security": ["basic"],
                }
            )
        out[name] = {**schema, "forms": forms}
    return out


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
