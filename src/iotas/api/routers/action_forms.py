"""The `invokeaction` form of a native Thing's TD (docs/wot.md, "Invoking actions"): what a WoT
consumer (node-wot, wotpy, thingctx) sends and expects, over the invocation queue.

A consumer POSTs the action's input itself and expects its output, where the operator API
(`POST .../actions/{name}`, routers/invocations.py) takes `{"input", "ttl",
"idempotency_key"}` and answers 202 with the invocation. So this route creates the
invocation through the same service (same checks: 400, 404, 423, 429), waits for its end
within a bound (`Prefer: wait=N`, RFC 7240; 30 s without one, at most 60; `Prefer:
respond-async` does not wait), then answers:

- 200 with the output, once the Thing has succeeded;
- 502 problem+json (the Thing's error code and message) when it failed or refused;
- 504 when it expired before the Thing took it; 409 when it was cancelled;
- 202 with the invocation and `Location: /api/v1/invocations/{id}` when it is not done
  within the wait: it stays queued for the Thing (default ttl 3600 s, `?ttl=` to change).

Every answer names the invocation (`Link: <...>; rel="related"`, and a problem's `instance`).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response

from iotas.api.bodies import body
from iotas.api.models import JsonValue
from iotas.api.prefer import preferences
from iotas.api.responses import json_response, problem
from iotas.api.security import CanOperate, Rt
from iotas.domain.errors import InvalidInput
from iotas.domain.invocations import MAX_KEY, MAX_TTL_S, MIN_TTL_S, Invocation, Status
from iotas.domain.td import action_affordance
from iotas.domain.td_actions import PROBLEM_TYPE
from iotas.services.context import Context

router = APIRouter(prefix="/api/v1/things", tags=["web of things"])

DEFAULT_WAIT_S = 30
MAX_WAIT_S = 60  # as GET /api/v1/invocations/{id}?wait=
# How often a waiting request looks whether its client is still there.
DISCONNECT_CHECK_S = 5.0

# A final status other than succeeded -> (HTTP status, problem title, slug).
_ENDED: dict[Status, tuple[int, str, str]] = {
    Status.FAILED: (502, "The Thing reported a failure", "action-failed"),
    Status.REJECTED: (502, "The Thing refused the invocation", "action-rejected"),
    Status.EXPIRED: (504, "The Thing did not take the invocation in time", "action-expired"),
    Status.CANCELLED: (409, "The invocation was cancelled", "action-cancelled"),
}
_PROBLEM = {"content": {PROBLEM_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The Thing succeeded: its output (JSON null when it gave none)",
        "content": {"application/json": {}},
    },
    202: {
        "description": (
            "Not finished within the wait: the invocation, queued for the Thing; follow it at "
            "Location"
        ),
        "content": {"application/json": {"schema": {"type": "object"}}},
        "headers": {"Location": {"schema": {"type": "string"}}},
    },
    409: {"description": "The invocation was cancelled while this request waited", **_PROBLEM},
    502: {"description": "The Thing reported a failure, or refused it (`error`)", **_PROBLEM},
    504: {"description": "The invocation expired before the Thing took it", **_PROBLEM},
}


@router.post(
    "/{thing_id}/actions/{name}/invoke",
    responses=_ANSWERS,
    summary="Invoke an action as a WoT consumer does: the input in, the output out",
)
async def invoke_and_wait(
    thing_id: str,
    name: str,
    request: Request,
    ctx: CanOperate,
    rt: Rt,
    value: Annotated[Any, body(JsonValue, required=False)],
    ttl: Annotated[
        float | None,
        Query(
            ge=MIN_TTL_S,
            le=MAX_TTL_S,
            description="Seconds the invocation may wait to be delivered (3600 if absent)",
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=MAX_KEY,
            description="The same key on the same Thing within 24 h is the same invocation",
        ),
    ] = None,
    prefer: Annotated[
        str | None,
        Header(
            description="RFC 7240: `wait=N` (seconds, at most 60; 30 if absent), `respond-async`"
        ),
    ] = None,
) -> Response:
    """The body is the action's input (none: null). Answers the output when the Thing has
    succeeded within the wait, a problem when it has failed, expired or been cancelled, and
    202 with the invocation when it has not finished: the invocation stays queued for the
    Thing (delivered when it is reachable) until it ends or its ttl passes."""
    if value == {} and await _takes_no_input(rt, ctx, thing_id, name):
        value = None  # thingctx 0.3 sends {}; node-wot nothing, wotpy null: all the same
    try:
        made = await rt.invocations.create(
            ctx, thing_id, name, value, ttl_s=ttl, idempotency_key=idempotency_key
        )
    except InvalidInput as exc:
        # The body is the input itself: point into it, not into the operator API's member.
        field = exc.extra.get("field")
        if isinstance(field, str) and (field == "/input" or field.startswith("/input/")):
            exc.extra["field"] = field.removeprefix("/input")
        raise
    wanted = preferences(request.headers.getlist("prefer"))
    wait = 0 if wanted.respond_async else min(wanted.wait or DEFAULT_WAIT_S, MAX_WAIT_S)
    done = made if made.final or wait == 0 else await _wait(rt, request, made, wait)
    applied = {"Preference-Applied": "respond-async"} if wanted.respond_async else {}
    return _answer(done, applied)


async def _takes_no_input(rt: Rt, ctx: Context, thing_id: str, name: str) -> bool:
    """Whether the action declares no input (then `{}` is no input, not an unwanted one)."""
    ctx.actor.must_see(thing_id)
    affordance = action_affordance(await rt.registry.get(thing_id), name)
    return affordance is not None and "input" not in affordance


async def _wait(rt: Rt, request: Request, made: Invocation, wait: float) -> Invocation:
    """The invocation once final, or as it is after `wait` s or when the client has gone
    (which does not cancel it)."""
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        found = await rt.invocations.wait(made.id, min(left, DISCONNECT_CHECK_S))
        if found.final or left <= DISCONNECT_CHECK_S or await request.is_disconnected():
            return found


def _answer(found: Invocation, headers: dict[str, str]) -> Response:
    where = f"/api/v1/invocations/{found.id}"
    headers = {**headers, "Link": f'<{where}>; rel="related"', "Cache-Control": "no-store"}
    if found.status is Status.SUCCEEDED:
        return json_response(found.output, 200, headers=headers)
    ended = _ENDED.get(found.status)
    if ended is None:  # not final yet
        return json_response(found.as_json(), 202, headers={**headers, "Location": where})
    status, title, slug = ended
    error = found.error or {}
    said = f": {error.get('code')}: {error.get('message')}" if found.error else ""
    action, thing = found.action[:200], found.thing_id
    detail = {
        Status.FAILED: f"the action {action!r} failed on {thing!r}{said}",
        Status.REJECTED: f"{thing!r} refused the action {action!r}{said}",
        Status.EXPIRED: f"{thing!r} did not take the invocation before its ttl passed",
        Status.CANCELLED: "the invocation was cancelled before it ended",
    }[found.status]
    return problem(
        status,
        title,
        detail,
        slug=slug,
        instance=where,
        extra={"invocation": found.id, "error": found.error},
        headers=headers,
    )
