"""The global change feed and its verification."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from iotas.api.paging import DEFAULT_LIMIT, Cursor, Limit
from iotas.api.responses import json_response
from iotas.api.security import CanRead, Permission, Rt, requires
from iotas.domain import cursor as cursors
from iotas.domain import journal as ev

# The kinds of record the journal speaks of (`domain.journal.KINDS`).
Kind = Enum("Kind", {name: name for name in ev.KINDS}, type=str)  # type: ignore[misc]

router = APIRouter(prefix="/api/v1/journal", tags=["journal"])
# The chain as a whole speaks of every namespace: never to a namespace-limited token.
_WHOLE = [requires(Permission.READ, installation=True)]


@router.get("")
async def feed(
    rt: Rt,
    ctx: CanRead,
    after: Annotated[
        int,
        Query(
            ge=0, le=cursors.MAX_POSITION, description="Return events with seq greater than this"
        ),
    ] = 0,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    kind: Annotated[
        Kind | None,
        Query(description="Only events of this kind of record (all kinds if absent)"),
    ] = None,
) -> Response:
    if cursor is not None:
        after = cursors.decode(cursor, expect="seq", kind=int)
    events = await rt.journal.feed(
        after,
        limit + 1,
        namespaces=ctx.actor.namespaces,
        kinds=None if kind is None else (kind.value,),
    )
    more = len(events) > limit
    page = events[:limit]
    next_cursor = cursors.encode({"seq": page[-1]["seq"]}) if more else None
    return json_response({"items": page, "next": next_cursor})


@router.get("/head", dependencies=_WHOLE)
async def head(rt: Rt) -> Response:
    """The newest event's seq, hash and time: where a live reader starts, and the value to
    record outside iotas so that a later rewrite of the whole chain shows."""
    return json_response(await rt.journal.head())


@router.get("/verify", dependencies=_WHOLE)
async def verify(rt: Rt) -> Response:
    return json_response((await rt.journal.verify()).to_dict())
