"""What the OpenAPI document says that FastAPI cannot infer, in one pass over every operation:
bearer auth and the public routes, our headers, every error a route can answer (as RFC 9457
problem+json), and the content types served that are not JSON.

Request bodies come from the pydantic model each route declares (`bodies.body`, models in
`models.py`). One pass here rather than `responses=` on each route: the errors follow from
what every route shares (authentication and roles in `security.py`, bodies in `bodies.py`,
path parameters, If-Match), so a new route is described right without code of its own.
FastAPI's own 422 is replaced by 400, which is what iotas answers for invalid input
(`errors.py`).
tests/integration/api/test_openapi_conformance.py runs schemathesis against the document.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from iotas.api.bodies import DECLARED
from iotas.api.dependencies import calls
from iotas.api.models import TD_TYPE
from iotas.domain.ids import THING_ID_RE

IF_MATCH: dict[str, Any] = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": (
        'The twin versions you read ("7", or a list: "7", "8"); 412 if the twin has moved on '
        'since. "*" matches any current version (RFC 9110 13.1.1).'
    ),
    "schema": {"type": "string"},
}
CAUSE: dict[str, Any] = {
    "name": "X-Iotas-Cause",
    "in": "header",
    "required": False,
    "description": (
        "Why this change is made, percent-encoded UTF-8 (at most 500 characters once decoded); "
        "recorded as the journal event's cause"
    ),
    "schema": {"type": "string", "maxLength": 500},
}
# Served without a token (routers/health.py, routers/wellknown.py: decision 19).
PUBLIC_PATHS = frozenset({"/healthz", "/.well-known/wot"})
MUTATIONS = frozenset({"post", "put", "patch", "delete"})
PROBLEM_TYPE = "application/problem+json"
REF = "#/components/schemas/"


_ERRORS: dict[int, str] = {
    400: "Invalid input: a parameter, header or body is malformed (the detail says which)",
    401: "No credential, or an unknown, expired or revoked one",
    403: "The credential's role or namespaces do not allow this",
    404: "No such resource (a Thing of another namespace is not there for a limited token)",
    409: "Conflict with the current state: it exists already, or the Thing is quarantined",
    412: "If-Match names no current twin version (`current_version` says which is)",
    415: "The body is not JSON (send application/json or the type this operation names)",
    423: "The Thing is quarantined: it takes no actions until an operator releases it",
    429: (
        "Too many failed authentications from this address (wait `Retry-After` seconds), or "
        "the Thing's queue of invocations is full"
    ),
}
# Errors only some operations answer: (method, path) -> statuses.
_OWN_ERRORS: dict[tuple[str, str], set[int]] = {
    ("post", "/api/v1/things/{thing_id}/actions/{name}"): {423},
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}}},
    429: {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}},
}
_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem document",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}

# What a parameter of this name accepts, wherever it appears: (in, name) -> schema members.
# Narrower than what is accepted where the full rule is not a pattern (a cause may be any
# percent-encoded UTF-8 text; the pattern documents its printable ASCII).
_VERSION = r'(W/)?("[0-9]{1,18}"|[0-9]{1,18})'
_INSTANT = {"format": "date-time"}
_PARAMETERS: dict[tuple[str, str], dict[str, Any]] = {
    # The Thing id rule itself, without Python's named groups (not ECMA 262 syntax).
    ("path", "thing_id"): {"pattern": re.sub(r"\(\?P<\w+>", "(", THING_ID_RE.pattern)},
    ("path", "sha256"): {"pattern": "^[0-9a-f]{64}$"},
    ("header", "last-event-id"): {"pattern": "^[0-9]{1,18}$"},
    ("header", "If-Match"): {
        "pattern": rf"^ *(\*|{_VERSION}( *, *{_VERSION})*) *$",
    },
    ("header", "X-Iotas-Cause"): {
        "pattern": "^([\\x20-\\x24\\x26-\\x7e]|%[2-6][0-9A-F]|%7[0-9A-E])*$"
    },
    ("query", "at"): _INSTANT,
    ("query", "since"): _INSTANT,
    ("query", "until"): _INSTANT,
    ("query", "from"): _INSTANT,
    ("query", "to"): _INSTANT,
}

# What a route serves that is not the JSON FastAPI assumes: (method, path) -> status ->
# content types (an empty list: no body). Entries name routes that exist; a test checks it.
_SERVED: dict[tuple[str, str], dict[str, list[str]]] = {
    ("get", "/metrics"): {"200": ["text/plain"]},
    ("get", "/api/v1/ca"): {"200": ["application/x-pem-file"]},
    ("get", "/api/v1/ca/crl"): {"200": ["application/pkix-crl"]},
    ("get", "/.well-known/wot"): {"200": [TD_TYPE]},
    ("get", "/tdd/things"): {"200": ["application/ld+json"]},
    ("get", "/tdd/things/{td_id}"): {"200": [TD_TYPE]},
    ("head", "/tdd/things"): {"200": ["application/ld+json"]},
    ("head", "/tdd/things/{td_id}"): {"200": [TD_TYPE]},
    ("post", "/tdd/things"): {"201": []},
    ("put", "/tdd/things/{td_id}"): {"201": [], "204": []},
    ("patch", "/tdd/things/{td_id}"): {"204": []},
}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            bodies(schema, app.routes)
            describe(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def bodies(schema: dict[str, Any], routes: list[BaseRoute]) -> None:
    """Each route's request body from the model it declares (`bodies.body`): the schema that
    also checks it, so the two cannot differ."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for route in routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        declared = [DECLARED[c] for c in calls(route) if c in DECLARED]
        if not declared:
            continue
        body = declared[0]
        name = body.model.__name__
        model_schema = body.model.model_json_schema(ref_template=REF + "{model}")
        components.update(model_schema.pop("$defs", {}))
        components[name] = model_schema
        ref = {"$ref": REF + name}
        for method in route.methods:
            operation = schema["paths"][route.path_format][method.lower()]
            operation["requestBody"] = {
                "content": {t: {"schema": ref} for t in body.media_types},
                "required": body.required,
            }


def describe(schema: dict[str, Any]) -> None:
    """Add to `schema` (FastAPI's document) what every route shares."""
    components = schema.setdefault("components", {})
    components.setdefault("securitySchemes", {})["bearer"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An iotas API token",
    }
    # A device's claim token, on the one route that takes it (routers/claims.py).
    components["securitySchemes"]["claim"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "A provisioning claim token",
    }
    components.setdefault("schemas", {})["Problem"] = _PROBLEM_SCHEMA
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            public = path in PUBLIC_PATHS
            if public:
                operation["security"] = []
            else:
                operation.setdefault("security", [{"bearer": []}])
                if method in MUTATIONS:
                    operation.setdefault("parameters", []).append(CAUSE)
            _served(operation, _SERVED.get((method, path), {}))
            for parameter in operation.get("parameters", []):
                _not_null(parameter)
                narrower = _PARAMETERS.get((parameter.get("in"), parameter.get("name")))
                if narrower:
                    parameter["schema"] = {**parameter.get("schema", {}), **narrower}
            if "requestBody" in operation:
                # Every body iotas reads is required unless its route says otherwise.
                operation["requestBody"].setdefault("required", True)
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in sorted(_errors(path, method, operation, public)):
                responses.setdefault(str(status), _problem(status))
    # FastAPI's validation error schemas are referred to by nothing now.
    for name in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(name, None)


def _errors(path: str, method: str, operation: dict[str, Any], public: bool) -> set[int]:
    """The errors an operation can answer, from what it shares with every other."""
    params = operation.get("parameters", [])
    codes: set[int] = set()
    if not public:
        # Every authenticated request reads X-Iotas-Cause (security.py): a bad one is a 400.
        codes |= {400, 401, 403, 429}
    elif params or "requestBody" in operation:
        codes.add(400)
    if "{" in path:
        codes.add(404)
    if "requestBody" in operation:
        codes.add(415)
    if method in MUTATIONS and not public:
        codes.add(409)
    if any(p.get("in") == "header" and p.get("name") == "If-Match" for p in params):
        codes.add(412)
    return codes | _OWN_ERRORS.get((method, path), set())


def _not_null(parameter: dict[str, Any]) -> None:
    """An optional parameter is absent, never null: FastAPI writes `str | None` as
    `anyOf: [string, null]`, and a client that sends "null" gets a 400 for it."""
    schema = parameter.get("schema", {})
    kinds = schema.get("anyOf")
    if isinstance(kinds, list) and {"type": "null"} in kinds:
        rest = [k for k in kinds if k != {"type": "null"}]
        del schema["anyOf"]
        if len(rest) == 1:
            schema.update(rest[0])
        else:
            schema["anyOf"] = rest


def _problem(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": _ERRORS[status],
        "content": {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def _served(operation: dict[str, Any], served: dict[str, list[str]]) -> None:
    if not served:
        return
    responses = operation.setdefault("responses", {})
    for status, types in served.items():
        response = responses.setdefault(status, {"description": "Success"})
        if types:
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            response["content"] = {t: {"schema": schema} for t in types}
        else:
            response.pop("content", None)
    # A success status the route declared but never answers (it answers those above).
    for status in [s for s in responses if s.startswith("2") and s not in served]:
        del responses[status]
