"""Quarantine (admin): cut a suspect Thing off, keep its state as evidence, release it later
with a new credential."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from starlette.responses import Response

from iotas.api.bodies import body
from iotas.api.models import QuarantineBody, ReleaseBody
from iotas.api.responses import json_response
from iotas.api.security import CanAdminister, Rt

router = APIRouter(prefix="/api/v1/things", tags=["quarantine"])


@router.post("/{thing_id}/quarantine")
async def quarantine(
    thing_id: str, ctx: CanAdminister, rt: Rt, data: Annotated[Any, body(QuarantineBody)]
) -> Response:
    """Quarantine the Thing (`{"reason": "..."}`): snapshot, revoke every credential (its
    live MQTT session is dropped), freeze its desired state and refuse actions to it."""
    return json_response(await rt.quarantine.quarantine(ctx, thing_id, data))


@router.post("/{thing_id}/quarantine/release")
async def release(
    thing_id: str, ctx: CanAdminister, rt: Rt, data: Annotated[Any, body(ReleaseBody)]
) -> Response:
    """Release the Thing with a new credential (`{"credential": {"type": "x509"}}`); the
    answer holds the credential's secret or key once."""
    return json_response(await rt.quarantine.release(ctx, thing_id, data))
