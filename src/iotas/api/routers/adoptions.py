"""Adopting third-party Web of Things Things, and invoking their actions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from iotas.api.bodies import json_body
from iotas.api.responses import json_response
from iotas.api.security import Ctx
from iotas.domain.errors import InvalidInput
from iotas.services.wot import WotBindings
from iotas.wot_things import WotThings

router = APIRouter(prefix="/api/v1", tags=["web of things"])

_ADOPTION_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "td_url": {"type": "string", "example": "http://127.0.0.1:8081/lamp"},
                    "td": {"type": "object"},
                    "id": {"type": "string", "example": "acme:lamp-1"},
                    "poll_interval": {"type": "number", "example": 30},
                    "credentials": {
                        "type": "object",
                        "properties": {
                            "username": {"type": "string"},
                            "password": {"type": "string"},
                            "token": {"type": "string"},
                        },
                    },
                },
            }
        }
    },
    "required": True,
}


def _wot(request: Request) -> WotThings:
    wot: WotThings = request.app.state.wot
    return wot


def _adoption(wot: WotThings, binding: Any) -> dict[str, Any]:
    return {**WotBindings.describe(binding), **wot.status(binding.thing_id)}


@router.post("/adoptions", status_code=201, openapi_extra={"requestBody": _ADOPTION_BODY})
async def adopt(request: Request, ctx: Ctx) -> Response:
    wot = _wot(request)
    adopted = await wot.adopt(ctx, await json_body(request))
    body = {"thing": adopted.thing.to_dict(), "adoption": _adoption(wot, adopted.binding)}
    return json_response(
        body,
        201 if adopted.created else 200,
        headers={"Location": f"/api/v1/adoptions/{adopted.thing.id}"},
    )


@router.get("/adoptions")
async def list_adoptions(request: Request, ctx: Ctx) -> Response:
    wot = _wot(request)
    bindings = [b for b in await wot.bindings.all() if ctx.actor.sees(b.thing_id)]
    return json_response({"items": [_adoption(wot, b) for b in bindings], "next": None})


@router.get("/adoptions/{thing_id}")
async def get_adoption(thing_id: str, request: Request, ctx: Ctx) -> Response:
    wot = _wot(request)
    return json_response(_adoption(wot, await wot.bindings.get(thing_id)))


@router.delete("/adoptions/{thing_id}", status_code=204)
async def release(thing_id: str, request: Request, ctx: Ctx) -> Response:
    await _wot(request).release(ctx, thing_id)
    return Response(status_code=204)


@router.post(
    "/things/{thing_id}/actions/{name}",
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {"schema": {"type": "object"}}},
            "required": False,
        }
    },
)
async def invoke(thing_id: str, name: str, request: Request, ctx: Ctx) -> Response:
    """Invoke an action of an adopted Thing through its TD (`{"input": ...}`); answers when
    the Thing does, within the WoT timeout."""
    body: Any = {}
    if await request.body():
        body = await json_body(request)
    if not isinstance(body, dict) or not set(body) <= {"input"}:
        raise InvalidInput('send {"input": <the action input>} or nothing')
    return json_response(await _wot(request).invoke(ctx, thing_id, name, body.get("input")))
