"""Quarantine (admin): cut a suspect Thing off, keep its state as evidence, release it later
with a new credential."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from iotas.api.bodies import json_body
from iotas.api.responses import json_response
from iotas.api.security import CanAdminister, Rt

router = APIRouter(prefix="/api/v1/things", tags=["quarantine"])

_OBJECT_BODY: Any = {
    "requestBody": {
        "content": {"application/json": {"schema": {"type": "object"}}},
        "required": True,
    }
}


@router.post("/{thing_id}/quarantine", openapi_extra=_OBJECT_BODY)
async def quarantine(thing_id: str, request: Request, ctx: CanAdminister, rt: Rt) -> Response:
    """Quarantine the Thing (`{"reason": "..."}`): snapshot, revoke every credential (its
    live MQTT session is dropped), freeze its desired state and refuse actions to it."""
    return json_response(await rt.quarantine.quarantine(ctx, thing_id, await json_body(request)))


@router.post("/{thing_id}/quarantine/release", openapi_extra=_OBJECT_BODY)
async def release(thing_id: str, request: Request, ctx: CanAdminister, rt: Rt) -> Response:
    """Release the Thing with a new credential (`{"credential": {"type": "x509"}}`); the
    answer holds the credential's secret or key once."""
    return json_response(await rt.quarantine.release(ctx, thing_id, await json_body(request)))
