"""`/.well-known/wot`: the Thing Description of iotas' Thing Description Directory.

WoT Discovery's introduction: a client that knows only this host fetches it to learn where
the directory is and how to authenticate. It holds no Thing data, so it is served without a
token (docs/decisions.md 19); everything it points at needs one.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from iotas import __version__
from iotas.api.models import TD_TYPE
from iotas.api.public_url import public_base
from iotas.api.routers.tdd import DISCOVERY_CONTEXT, PREFIX
from iotas.api.security import Permission, requires
from iotas.domain.td import HTV, TD_CONTEXT, TD_CONTEXT_V1

router = APIRouter(tags=["directory"])

_PROBLEM = "application/problem+json"


def directory_td(base: str) -> dict[str, Any]:
    """The directory's TD, an instance of the W3C Thing Description Directory Thing Model
    (wot-discovery-directory.tm.json) with iotas' base URL and bearer security, and the
    model's data schemas (a consumer such as node-wot checks answers against them)."""
    td_id = {
        "@type": "ThingID",
        "title": "Thing Description ID",
        "type": "string",
        "format": "iri-reference",
    }
    a_td = {"description": "The schema is implied by the content type", "type": "object"}

    def action(method: str, href: str, description: str, status: int, **more: Any) -> Any:
        # The schema wants a response's content type even where the body is empty (201, 204).
        answer = TD_TYPE if href.endswith("{id}") and method == "GET" else "application/json"
        form: dict[str, Any] = {
            "href": href,
            "htv:methodName": method,
            "response": {
                "description": description,
                "htv:statusCodeValue": status,
                "contentType": answer,
            },
            "additionalResponses": [
                {"contentType": _PROBLEM, "htv:statusCodeValue": 400, "success": False}
            ],
        }
        if method in ("PUT", "POST"):
            form["contentType"] = TD_TYPE
            more.setdefault("input", a_td)
        if method == "PATCH":
            form["contentType"] = "application/merge-patch+json"
            more.setdefault("input", a_td)
        return {"forms": [form], **more}

    def event(name: str, description: str) -> Any:
        return {
            "description": description,
            "data": {"type": "object", "properties": {"id": {"type": "string"}}},
            "uriVariables": {"diff": {"type": "boolean"}},
            "forms": [
                {
                    "href": f"{PREFIX}/events/{name}{{?diff}}",
                    "op": ["subscribeevent"],
                    "subprotocol": "sse",
                    "contentType": "text/event-stream",
                }
            ],
        }

    return {
        # The TD 1.0 context first: TD 1.0 consumers (node-wot 0.9's schema) want it there.
        "@context": [TD_CONTEXT_V1, TD_CONTEXT, DISCOVERY_CONTEXT, {"htv": HTV}],
        "@type": "ThingDirectory",
        "id": f"{base}/.well-known/wot",
        "title": "iotas Thing Description Directory",
        "version": {"instance": __version__, "model": "1.0.0"},
        "base": base,
        "securityDefinitions": {
            "bearer": {"scheme": "bearer", "in": "header", "name": "Authorization"}
        },
        "security": ["bearer"],
        "properties": {
            "things": {
                "description": "Every Thing Description, in pages",
                "oneOf": [
                    {
                        "description": "Plain list of Thing Descriptions",
                        "type": "array",
                        "items": {"description": "Thing Description", "type": "object"},
                    },
                    {
                        "description": "A page with its total and the next page (format)",
                        "type": "object",
                        "properties": {
                            "@context": {"const": DISCOVERY_CONTEXT},
                            "@type": {"const": "ThingCollection"},
                            "@id": {"type": "string"},
                            "members": {"type": "array", "items": {"type": "object"}},
                            "total": {"type": "number"},
                            "next": {"type": "string"},
                        },
                    },
                ],
                "readOnly": True,
                "uriVariables": {
                    "offset": {"type": "integer", "minimum": 0},
                    "limit": {"type": "integer", "minimum": 1},
                    "format": {"type": "string", "enum": ["array", "collection"]},
                },
                "forms": [
                    {
                        "href": f"{PREFIX}/things{{?offset,limit,format}}",
                        "op": ["readproperty"],
                        "htv:methodName": "GET",
                        "contentType": "application/ld+json",
                    }
                ],
            }
        },
        "actions": {
            "createThing": action(
                "PUT", f"{PREFIX}/things/{{id}}", "Created", 201, uriVariables={"id": td_id}
            ),
            "createAnonymousThing": action("POST", f"{PREFIX}/things", "Created", 201),
            "retrieveThing": action(
                "GET",
                f"{PREFIX}/things/{{id}}",
                "The TD",
                200,
                uriVariables={"id": td_id},
                output=a_td,
                safe=True,
                idempotent=True,
            ),
            "updateThing": action(
                "PUT", f"{PREFIX}/things/{{id}}", "Updated", 204, uriVariables={"id": td_id}
            ),
            "partiallyUpdateThing": action(
                "PATCH", f"{PREFIX}/things/{{id}}", "Updated", 204, uriVariables={"id": td_id}
            ),
            "deleteThing": action(
                "DELETE", f"{PREFIX}/things/{{id}}", "Deleted", 204, uriVariables={"id": td_id}
            ),
            "searchJSONPath": action(
                "GET",
                f"{PREFIX}/search/jsonpath{{?query}}",
                "The matching values",
                200,
                uriVariables={"query": {"title": "A JSONPath expression", "type": "string"}},
                # The model says "object"; the answer is RFC 9535's list of the values found.
                output={"description": "The values the query selects", "type": "array"},
                safe=True,
                idempotent=True,
            ),
        },
        "events": {
            "thingCreated": event("thing_created", "A TD was registered"),
            "thingUpdated": event("thing_updated", "A TD was changed"),
            "thingDeleted": event("thing_deleted", "A TD was removed"),
        },
    }


@router.get("/.well-known/wot", dependencies=[requires(Permission.PUBLIC)])
async def well_known(request: Request) -> Response:
    doc = directory_td(public_base(request))
    return Response(orjson.dumps(doc), media_type=TD_TYPE)
