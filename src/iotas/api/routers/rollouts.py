"""Rollouts: one change carried to many Things in waves (docs/commands.md).

A rollout's target is a query over every namespace, so the routes speak of the whole
installation: a namespace-limited token is refused (403), as for tokens and claims.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from iotas.api.bodies import body
from iotas.api.models import RolloutBody, RolloutCommand
from iotas.api.paging import DEFAULT_LIMIT, Cursor, Limit
from iotas.api.responses import json_response
from iotas.api.security import Permission, Rt, requires
from iotas.domain import cursor as cursors
from iotas.services.context import Context

router = APIRouter(prefix="/api/v1/rollouts", tags=["rollouts"])

Read = Annotated[Context, requires(Permission.READ, installation=True)]
Operate = Annotated[Context, requires(Permission.OPERATE, installation=True)]
Command = Annotated[Any, body(RolloutCommand, required=False)]
Statuses = Annotated[
    str | None, Query(max_length=200, description="Comma-separated statuses to keep")
]


@router.post("", status_code=201, summary="Start a rollout (or schedule it, with start_at)")
async def create_rollout(ctx: Operate, rt: Rt, data: Annotated[Any, body(RolloutBody)]) -> Response:
    rollout = await rt.rollouts.create(ctx, data)
    return json_response(rollout, 201, headers={"Location": f"/api/v1/rollouts/{rollout['id']}"})


@router.get("", summary="Rollouts, newest first")
async def list_rollouts(
    ctx: Read, rt: Rt, status: Statuses = None, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Response:
    after = None if cursor is None else cursors.decode(cursor, expect="id", kind=str)
    statuses = [s.strip() for s in status.split(",") if s.strip()] if status else None
    items = await rt.rollouts.list(statuses=statuses, limit=limit + 1, after=after)
    page = items[:limit]
    more = len(items) > limit
    return json_response(
        {"items": page, "next": cursors.encode({"id": page[-1]["id"]}) if more else None}
    )


@router.get("/{rollout_id}", summary="A rollout, with its counts per status and per wave")
async def get_rollout(rollout_id: str, ctx: Read, rt: Rt) -> Response:
    return json_response(await rt.rollouts.get(rollout_id))


@router.get("/{rollout_id}/things", summary="A rollout's Things, in rollout order")
async def rollout_things(
    rollout_id: str,
    ctx: Read,
    rt: Rt,
    status: Annotated[
        str | None,
        Query(description="pending, in_flight, succeeded, failed or cancelled"),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    after = None if cursor is None else cursors.decode(cursor, expect="position", kind=int)
    items = await rt.rollouts.things(rollout_id, status=status, limit=limit + 1, after=after)
    page = items[:limit]
    more = len(items) > limit
    next_cursor = cursors.encode({"position": page[-1]["position"]}) if more else None
    return json_response({"items": page, "next": next_cursor})


@router.post("/{rollout_id}/pause", summary="Pause: no more Things start; those in flight go on")
async def pause_rollout(rollout_id: str, ctx: Operate, rt: Rt, data: Command) -> Response:
    return json_response(await rt.rollouts.pause(ctx, rollout_id))


@router.post("/{rollout_id}/resume", summary="Resume a paused rollout")
async def resume_rollout(rollout_id: str, ctx: Operate, rt: Rt, data: Command) -> Response:
    return json_response(await rt.rollouts.resume(ctx, rollout_id))


@router.post(
    "/{rollout_id}/cancel",
    summary="Cancel: pending Things never start; changes in flight are stopped where possible",
)
async def cancel_rollout(rollout_id: str, ctx: Operate, rt: Rt, data: Command) -> Response:
    return json_response(await rt.rollouts.cancel(ctx, rollout_id))
