"""Invocations of Things' actions: operators invoke (202: queued), follow, wait and cancel;
a device with its client certificate fetches its own queue and posts results
(docs/commands.md)."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from iotas.api.bodies import body
from iotas.api.models import ActionBody, CancelBody, ResultBody
from iotas.api.paging import Limit
from iotas.api.responses import json_response
from iotas.api.security import CanOperate, CanRead, Permission, Rt, requires
from iotas.domain.errors import Conflict, InvalidInput, NotFound
from iotas.domain.invocations import PENDING, Invocation, parse_statuses
from iotas.services.context import Context
from iotas.services.snapshots import check_reason

router = APIRouter(prefix="/api/v1", tags=["invocations"])

MAX_WAIT_S = 60
# A Thing's own client certificate may read its queue and post its results.
DeviceReads = Annotated[Context, requires(Permission.READ, device=True)]
DeviceReports = Annotated[Context, requires(Permission.OPERATE, device=True)]
Statuses = Annotated[
    str | None,
    Query(
        max_length=200,
        description="Comma-separated statuses (queued, delivered, running, succeeded, ...)",
    ),
]
After = Annotated[
    str | None, Query(max_length=40, description="The `next` value of the previous page")
]


def _location(invocation: Invocation) -> dict[str, str]:
    return {"Location": f"/api/v1/invocations/{invocation.id}"}


def _page(items: list[Invocation], limit: int) -> Response:
    next_after = items[-1].id if len(items) == limit else None
    return json_response({"items": [i.as_json() for i in items], "next": next_after})


async def _visible(rt: Rt, ctx: Context, invocation_id: str) -> Invocation:
    """The invocation, if the caller may see its Thing (404 as for none otherwise)."""
    found = await rt.invocations.get(invocation_id)
    if not ctx.actor.sees(found.thing_id):
        raise NotFound(f"there is no invocation {invocation_id[:64]!r}")
    return found


@router.post(
    "/things/{thing_id}/actions/{name}",
    status_code=202,
    summary="Invoke an action: the invocation is queued for the Thing (202)",
)
async def invoke(
    thing_id: str,
    name: str,
    ctx: CanOperate,
    rt: Rt,
    data: Annotated[Any, body(ActionBody, required=False)],
) -> Response:
    """Queue an invocation of the Thing's action (`{"input", "ttl"?, "idempotency_key"?}`);
    it is delivered when the Thing is reachable, in creation order. Follow it at Location
    (`?wait=30` waits for its end)."""
    sent = data or {}
    made = await rt.invocations.create(
        ctx,
        thing_id,
        name,
        sent.get("input"),
        ttl_s=sent.get("ttl"),
        idempotency_key=sent.get("idempotency_key"),
    )
    return json_response(made.as_json(), 202, headers=_location(made))


@router.get("/invocations/{invocation_id}", summary="An invocation; ?wait=N waits for its end")
async def get_invocation(
    invocation_id: str,
    ctx: CanRead,
    rt: Rt,
    wait: Annotated[
        float,
        Query(ge=0, le=MAX_WAIT_S, description="Seconds to wait for a final status (0-60)"),
    ] = 0,
) -> Response:
    found = await _visible(rt, ctx, invocation_id)
    if wait > 0 and not found.final:
        found = await rt.invocations.wait(invocation_id, wait)
    return json_response(found.as_json())


@router.get("/invocations", summary="Invocations, oldest first, by Thing, status or rollout")
async def list_invocations(
    ctx: CanRead,
    rt: Rt,
    thing: Annotated[str | None, Query(max_length=200, description="A Thing id")] = None,
    status: Statuses = None,
    rollout: Annotated[str | None, Query(max_length=64, description="A rollout id")] = None,
    limit: Limit = 100,
    after: After = None,
) -> Response:
    if thing is not None and not ctx.actor.sees(thing):
        return _page([], limit)
    items = await rt.invocations.list(
        thing_id=thing,
        status=parse_statuses(status) if status else None,
        rollout_id=rollout,
        limit=limit,
        after=after,
        namespaces=ctx.actor.namespaces,
    )
    return _page(items, limit)


@router.post("/invocations/{invocation_id}/cancel", summary="Cancel an invocation not final")
async def cancel_invocation(
    invocation_id: str,
    ctx: CanOperate,
    rt: Rt,
    data: Annotated[Any, body(CancelBody, required=False)],
) -> Response:
    """`{"reason"?}`: the reason is the cause the journal keeps (else X-Iotas-Cause's)."""
    reason = check_reason((data or {}).get("reason"))
    if reason:
        ctx = replace(ctx, cause=reason)
    return json_response((await rt.invocations.cancel(ctx, invocation_id)).as_json())


@router.get(
    "/things/{thing_id}/invocations",
    summary="A Thing's invocations; its own device fetches its pending ones (marked delivered)",
)
async def thing_invocations(
    thing_id: str,
    ctx: DeviceReads,
    rt: Rt,
    status: Statuses = None,
    limit: Limit = 100,
    after: After = None,
) -> Response:
    """For operators, the Thing's invocations (by status). For the Thing's own device
    (client certificate): what it has still to run, oldest first, recorded as delivered by
    this answer; ask again after a result, or after a failure to get this answer (a
    delivered invocation with no result is handed out again: at least once)."""
    statuses = parse_statuses(status) if status else None
    if ctx.actor.role != "device":
        await rt.registry.get(thing_id)  # 404 for no such Thing
        items = await rt.invocations.list(
            thing_id=thing_id, status=statuses, limit=limit, after=after
        )
        return _page(items, limit)
    wanted = set(statuses or PENDING)
    pending = [i for i in await rt.invocations.pending(thing_id) if i.status in wanted]
    pending = [i for i in pending if after is None or i.id > after][:limit]
    ids = [i.id for i in pending]
    await rt.invocations.delivered(ctx, ids)
    now = await rt.invocations.many(ids)
    return _page([now[i] for i in ids if i in now], limit)


@router.post(
    "/things/{thing_id}/invocations/{invocation_id}/result",
    summary="A Thing's result for one of its invocations (its device, with its certificate)",
)
async def post_result(
    thing_id: str,
    invocation_id: str,
    ctx: DeviceReports,
    rt: Rt,
    data: Annotated[Any, body(ResultBody)],
) -> Response:
    """`{"status": "running"|"succeeded"|"failed", "progress"?, "output"?, "error"?}`. A
    result for an invocation that is not this Thing's is a 404, one for a final invocation a
    409 (both counted in /api/v1/stats)."""
    applied = await rt.invocations.report(ctx, thing_id, invocation_id, data)
    if applied is not None:
        return json_response(applied.as_json())
    found = await rt.invocations.many([invocation_id])
    current = found.get(invocation_id)
    if current is None or current.thing_id != thing_id:
        raise NotFound(f"{thing_id!r} has no invocation {invocation_id[:64]!r}")
    if current.final:
        raise Conflict(f"invocation {invocation_id} is {current.status} already")
    raise InvalidInput("the result is not valid (see docs/commands.md)")
