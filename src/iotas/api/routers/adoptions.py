"""Adopting third-party Web of Things Things. (Their actions are invoked like any Thing's,
through the queue: routers/invocations.py.)"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from iotas.adapters.wot.things import WotThings
from iotas.api.bodies import body
from iotas.api.models import AdoptionBody
from iotas.api.responses import json_response
from iotas.api.security import CanAdminister, CanRead
from iotas.runtime import Runtime
from iotas.services.wot import WotBindings

router = APIRouter(prefix="/api/v1", tags=["web of things"])


def _wot(request: Request) -> WotThings:
    rt: Runtime = request.app.state.runtime
    wot = rt.adapters.get(WotThings)
    if wot is None:  # the table always starts it; a node without it has no adoptions
        raise RuntimeError("the WoT adapter is not running")
    return wot


def _adoption(wot: WotThings, binding: Any) -> dict[str, Any]:
    return {**WotBindings.describe(binding), **wot.status(binding.thing_id)}


@router.post("/adoptions", status_code=201)
async def adopt(
    request: Request, ctx: CanAdminister, data: Annotated[Any, body(AdoptionBody)]
) -> Response:
    wot = _wot(request)
    adopted = await wot.adopt(ctx, data)
    body = {"thing": adopted.thing.to_dict(), "adoption": _adoption(wot, adopted.binding)}
    return json_response(
        body,
        201 if adopted.created else 200,
        headers={"Location": f"/api/v1/adoptions/{adopted.thing.id}"},
    )


@router.get("/adoptions")
async def list_adoptions(request: Request, ctx: CanRead) -> Response:
    wot = _wot(request)
    bindings = [b for b in await wot.bindings.all() if ctx.actor.sees(b.thing_id)]
    return json_response({"items": [_adoption(wot, b) for b in bindings], "next": None})


@router.get("/adoptions/{thing_id}")
async def get_adoption(thing_id: str, request: Request, ctx: CanRead) -> Response:
    wot = _wot(request)
    return json_response(_adoption(wot, await wot.bindings.get(thing_id)))


@router.delete("/adoptions/{thing_id}", status_code=204)
async def release(thing_id: str, request: Request, ctx: CanAdminister) -> Response:
    await _wot(request).release(ctx, thing_id)
    return Response(status_code=204)
