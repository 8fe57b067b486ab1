"""Live Server-Sent Events: one `event` per journal event, `id` = seq, resumable."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query
from starlette.responses import StreamingResponse

from iotas.api.runtime import Runtime
from iotas.api.security import Rt, context
from iotas.domain import clock
from iotas.domain.errors import InvalidInput
from iotas.domain.journal import EVENT_TYPES, THING_DELETED
from iotas.domain.query import Node, matches, parse

router = APIRouter(prefix="/api/v1", tags=["events"], dependencies=[Depends(context)])

BATCH = 500
POLL_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0


@router.get(
    "/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def events(
    rt: Rt,
    q: Annotated[
        str | None, Query(max_length=4096, description="Only events of matching Things")
    ] = None,
    types: Annotated[str | None, Query(description="Comma-separated event types")] = None,
    after: Annotated[int | None, Query(ge=0, description="Start after this seq")] = None,
    last_event_id: Annotated[str | None, Header(description="Resume after this seq")] = None,
) -> StreamingResponse:
    # (A long-lived stream: declaring the header costs nothing that matters here.)
    wanted = _types(types)
    node = parse(q) if q else None
    start = _start(after, last_event_id)
    if start is None:
        start = await rt.journal.head_seq()
    return StreamingResponse(
        _stream(rt, start, wanted, node),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _types(types: str | None) -> list[str] | None:
    if not types:
        return None
    wanted = [t.strip() for t in types.split(",") if t.strip()]
    unknown = [t for t in wanted if t not in EVENT_TYPES]
    if unknown:
        raise InvalidInput(
            f"unknown event type(s) {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}"
        )
    return wanted


def _start(after: int | None, last_event_id: str | None) -> int | None:
    if last_event_id is not None:
        if not last_event_id.strip().isdigit():
            raise InvalidInput("Last-Event-ID must be the seq of the last event received")
        return int(last_event_id.strip())
    return after


async def _stream(
    rt: Runtime, last: int, wanted: list[str] | None, node: Node | None
) -> AsyncIterator[bytes]:
    # Tell EventSource clients how soon to reconnect; they resume with Last-Event-ID.
    yield b"retry: 2000\n\n"
    quiet_since = time.monotonic()
    while True:
        watched = rt.signal.watch()
        batch = await rt.journal.feed(last, BATCH)
        if batch:
            last = batch[-1]["seq"]
            selected = [e for e in batch if wanted is None or e["type"] in wanted]
            if node is not None and selected:
                selected = await _matching(rt, node, selected)
            for event in selected:
                yield _frame(event)
            if selected:
                quiet_since = time.monotonic()
            if len(batch) == BATCH:
                continue
        if time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
            yield b": keepalive\n\n"
            quiet_since = time.monotonic()
        await rt.signal.wait(POLL_SECONDS, watched)


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


def _frame(event: dict[str, Any]) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event["seq"],
        event["type"].encode(),
        orjson.dumps(event),
    )
