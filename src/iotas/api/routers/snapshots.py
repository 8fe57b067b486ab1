"""Forensic snapshots: taken (admin), listed and downloaded; never changed or deleted."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from starlette.responses import Response

from iotas.api.bodies import body
from iotas.api.models import SnapshotBody
from iotas.api.responses import json_response
from iotas.api.security import CanAdminister, CanRead, Rt

router = APIRouter(prefix="/api/v1", tags=["snapshots"])


@router.post("/things/{thing_id}/snapshots", status_code=201)
async def take_snapshot(
    thing_id: str,
    ctx: CanAdminister,
    rt: Rt,
    data: Annotated[Any, body(SnapshotBody, required=False)],
) -> Response:
    """Take a write-once snapshot of the Thing's complete state (`{"reason": ...}` optional)."""
    taken = await rt.snapshots.take(ctx, thing_id, (data or {}).get("reason"))
    location = f"/api/v1/snapshots/{taken['sha256']}"
    return json_response({**taken, "url": location}, 201, headers={"Location": location})


@router.get("/things/{thing_id}/snapshots")
async def list_snapshots(thing_id: str, ctx: CanRead, rt: Rt) -> Response:
    return json_response({"items": await rt.snapshots.of_thing(thing_id), "next": None})


@router.get("/snapshots/{sha256}")
async def get_snapshot(sha256: str, ctx: CanRead, rt: Rt) -> Response:
    """The snapshot's exact bytes: their sha256 is its name."""
    body = await rt.snapshots.get(sha256, ctx.actor)
    return Response(
        body,
        media_type="application/json",
        headers={"ETag": f'"{sha256}"', "Cache-Control": "private, immutable"},
    )
