"""The Things around a Thing, following typed edges (links of Things and of their TDs)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from starlette.responses import Response

from iotas.api.responses import json_response
from iotas.api.security import CanRead, Rt
from iotas.services.graph import MAX_DEPTH

router = APIRouter(prefix="/api/v1/things", tags=["things"])


@router.get("/{thing_id}/graph")
async def graph(
    thing_id: str,
    ctx: CanRead,
    rt: Rt,
    rel: Annotated[
        str | None, Query(description='Only edges of this relation ("*" or none: any)')
    ] = None,
    depth: Annotated[int, Query(ge=1, le=MAX_DEPTH, description="Hops from the Thing")] = 1,
    direction: Annotated[
        Literal["out", "in", "both"],
        Query(description="out: the Thing's edges; in: edges to it; both"),
    ] = "out",
) -> Response:
    """The Things around this one: nodes (each `exists`, or `dangling` when no such Thing is
    registered yet) and edges, to `depth` hops; at most 10,000 edges, else `truncated`."""
    found = await rt.graph.around(
        thing_id, rel=rel, depth=depth, direction=direction, namespaces=ctx.actor.namespaces
    )
    return json_response(found)
