"""Live Server-Sent Events: one `event` per journal event, `id` = seq, resumable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Query
from starlette.responses import StreamingResponse

from iotas.api.routers.journal import Kind
from iotas.api.security import CanRead, Rt
from iotas.api.sse import KEEPALIVE, PREAMBLE, frame, journal_events, resume_point
from iotas.domain import clock
from iotas.domain import cursor as cursors
from iotas.domain.errors import InvalidInput
from iotas.domain.journal import KINDS, THING, THING_DELETED
from iotas.domain.query import Node, matches, parse, transitive
from iotas.runtime import Runtime

router = APIRouter(prefix="/api/v1", tags=["events"])
# Every event type of every kind (`_types` checks them against the kind asked for).
_ALL_TYPES = sorted(set().union(*KINDS.values()))
_TYPE = "(" + "|".join(_ALL_TYPES) + ")"
_TYPES_PATTERN = f"^{_TYPE}(,{_TYPE})*$"


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    rt: Rt,
    ctx: CanRead,
    q: Annotated[
        str | None, Query(max_length=4096, description="Only events of matching Things")
    ] = None,
    types: Annotated[
        str | None,
        Query(
            description="Comma-separated event types",
            # Documented only: _types() checks it with a message naming the known types.
            json_schema_extra={"pattern": _TYPES_PATTERN},
        ),
    ] = None,
    after: Annotated[
        int | None, Query(ge=0, le=cursors.MAX_POSITION, description="Start after this seq")
    ] = None,
    last_event_id: Annotated[str | None, Header(description="Resume after this seq")] = None,
    kind: Annotated[
        Kind | None,
        Query(description="Events of this kind of record (Things if absent): `invocation`, ..."),
    ] = None,
) -> StreamingResponse:
    # (A long-lived stream: declaring the header costs nothing that matters here.)
    record_kind = THING if kind is None else kind.value
    wanted = _types(types, record_kind)
    if q and record_kind != THING:
        raise InvalidInput(f"q filters Things' events; it cannot filter {record_kind} events")
    node = parse(q) if q else None
    if node is not None and transitive(node):
        raise InvalidInput(
            "reachable() cannot filter a live stream (each event is matched against one Thing); "
            "use linked(), or list the reachable Things and filter on their ids"
        )
    start = resume_point(after, last_event_id)
    if start is None:
        start = await rt.journal.head_seq()
    return StreamingResponse(
        _stream(rt, start, wanted, node, ctx.actor.namespaces, record_kind),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _types(types: str | None, kind: str) -> list[str] | None:
    if not types:
        return None
    wanted = [t.strip() for t in types.split(",") if t.strip()]
    known = sorted(KINDS[kind])
    unknown = [t for t in wanted if t not in KINDS[kind]]
    if unknown:
        raise InvalidInput(
            f"unknown {kind} event type(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return wanted


async def _stream(
    rt: Runtime,
    last: int,
    wanted: list[str] | None,
    node: Node | None,
    namespaces: tuple[str, ...] | None,
    kind: str,
) -> AsyncIterator[bytes]:
    yield PREAMBLE

    async def select(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return events if node is None else await _matching(rt, node, events)

    async for event in journal_events(rt, last, wanted, select, namespaces=namespaces, kind=kind):
        if event is None:
            yield KEEPALIVE
        else:
            yield frame(event["seq"], event["type"], orjson.dumps(event))


async def _matching(rt: Runtime, node: Node, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events whose Thing matches the query now (a deleted Thing: as it was when deleted)."""
    ids = sorted({e["thing_id"] for e in events if e["type"] != THING_DELETED})
    current = await rt.registry.get_many(ids)
    now_us = clock.now_us()
    out = []
    for event in events:
        if event["type"] == THING_DELETED:
            doc = event.get("before")
        else:
            thing = current.get(event["thing_id"])
            doc = thing.to_dict() if thing is not None else None
        if doc is not None and matches(node, doc, now_us=now_us):
            out.append(event)
    return out
