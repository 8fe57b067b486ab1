"""The actions of a native Thing's TD: each action of its Thing Model, with the form a WoT
consumer uses (docs/wot.md, "Invoking actions"; decision "Action forms for WoT consumers").

- `invokeaction`: `POST .../actions/{name}/invoke` with the input itself as the body (what
  node-wot, wotpy and thingctx send); it queues an invocation and answers the *output*
  (200) once the Thing has succeeded, within a bounded wait; a problem+json when it failed,
  expired, was cancelled or refused; `202` with the invocation (and its `Location`) when it
  is not done yet, described as an additional response (TD 1.1 5.3.4.2) whose schema is in
  the TD's `schemaDefinitions`.
- `queryallactions` (a Thing-level form): the Thing's invocations.

No `synchronous` (TD 1.1: its absence makes no claim; `false` would be true but makes
thingctx treat the action as a WoT Profile asynchronous one, see below) and no per-action
`queryaction`/`cancelaction` forms: TD 1.1 allows them with a URI variable for the
invocation id, but has no term saying the variable's value comes from the invokeaction
answer, so no generic consumer can chain them, and thingctx 0.3 posts the input to the
`queryaction` form of any action that has one, which would stop it invoking at all. The
`202` answer's `Location` is the invocation to query and cancel.

Pure: the caller (`td.native_td`) passes the model's actions already stripped of their forms.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from iotas.domain.merge_patch import JSONObject

# The names of the TD's `schemaDefinitions` the action forms' additional responses refer to.
INVOCATION_SCHEMA_NAME: Final = "invocation"
PROBLEM_SCHEMA_NAME: Final = "problem"
PROBLEM_TYPE: Final = "application/problem+json"
# Members of a model's action about forms the generated TD does not have, or answers it
# cannot promise (`synchronous`: the form may answer 202).
_SET_HERE: Final = frozenset({"forms", "uriVariables", "synchronous"})


def _or_null(schema: JSONObject) -> JSONObject:
    # A TD data schema's `type` is one name: "this or null" is a oneOf.
    return {"oneOf": [schema, {"type": "null"}]}


_INSTANT: Final[JSONObject] = {"type": "string", "format": "date-time"}
_ERROR: Final[JSONObject] = {
    "type": "object",
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
}
# What `domain.invocations.Invocation.as_json` answers (a unit test checks they agree).
INVOCATION_SCHEMA: Final[JSONObject] = {
    "title": "Invocation",
    "description": (
        "The invocation, queued for the Thing and not finished within the wait: follow it "
        "at the answer's Location (GET /api/v1/invocations/{id}?wait=N) until its status is "
        "final"
    ),
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "thing": {"type": "string"},
        "action": {"type": "string"},
        "input": {},
        "status": {
            "type": "string",
            "enum": [
                "queued",
                "delivered",
                "running",
                "succeeded",
                "failed",
                "expired",
                "cancelled",
                "rejected",
            ],
        },
        "created": _INSTANT,
        "updated": _INSTANT,
        "expires": _INSTANT,
        "delivered": _or_null(_INSTANT),
        "output": {},
        "error": _or_null(_ERROR),
        "progress": _or_null({"type": "number", "minimum": 0, "maximum": 100}),
        "rollout": _or_null({"type": "string"}),
        "attempts": {"type": "integer", "minimum": 0},
    },
    "required": ["id", "thing", "action", "status", "created", "expires"],
}
PROBLEM_SCHEMA: Final[JSONObject] = {
    "title": "Problem",
    "description": (
        "An RFC 9457 problem: the input refused (400), no such Thing or action (404), the Thing "
        "quarantined (423), its queue full (429), the invocation cancelled (409), failed or "
        "refused by the Thing (502, with its error), or expired before the Thing took it (504)"
    ),
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The invocation, when there is one"},
    },
    "required": ["type", "title", "status", "detail"],
}
SCHEMA_DEFINITIONS: Final[JSONObject] = {
    INVOCATION_SCHEMA_NAME: INVOCATION_SCHEMA,
    PROBLEM_SCHEMA_NAME: PROBLEM_SCHEMA,
}


def invoke_href(api: str, name: str) -> str:
    """The invokeaction form's href, under the Thing's API URL `api`."""
    return f"{api}/actions/{quote(name, safe='')}/invoke"


def action_affordances(actions: dict[str, JSONObject], *, api: str) -> dict[str, JSONObject]:
    """Each action of the model (`actions`, without forms) with iotas' form; `api` is the
    Thing's API URL."""
    return {
        name: {
            **{k: v for k, v in affordance.items() if k not in _SET_HERE},
            "forms": [_invoke_form(invoke_href(api, name))],
        }
        for name, affordance in actions.items()
    }


def query_all_form(api: str) -> JSONObject:
    """The Thing-level form that lists the Thing's invocations (newest last)."""
    return {
        "href": f"{api}/invocations",
        "op": ["queryallactions"],
        "htv:methodName": "GET",
        "contentType": "application/json",
    }


def _invoke_form(href: str) -> JSONObject:
    return {
        "href": href,
        "op": ["invokeaction"],
        "htv:methodName": "POST",
        "contentType": "application/json",
        "additionalResponses": [
            {
                "success": True,
                "contentType": "application/json",
                "schema": INVOCATION_SCHEMA_NAME,
                "htv:statusCodeValue": 202,
            },
            {"success": False, "contentType": PROBLEM_TYPE, "schema": PROBLEM_SCHEMA_NAME},
        ],
    }
