"""Observing a Thing's properties and subscribing to its events, as the forms of its TD name
them (docs/wot.md): each in two ways, for two kinds of consumer.

- `.../next`, a long poll: answers the next value (the property's new reported value, or the
  event's data) as plain JSON. node-wot and wotpy use it with their bearer token; node-wot
  first sends a `HEAD`, answered at once. It waits for as long as it takes, or as long as
  the client asks with `Prefer: wait=N` (RFC 7240; then `204` when nothing came).
- `.../stream`, Server-Sent Events: one `data:` line of JSON per change, with `id:` the
  journal seq (resume with `Last-Event-ID`); telemetry is live only and has no id. For
  EventSource clients, which send no headers, a short-lived stream ticket
  (`/stream-ticket`, see `api/stream_tickets.py`) stands in for the token.

A property's value is what the Thing reported; an event's data what the Thing sent with it;
the `telemetry` event carries each telemetry record as the device sent it, with its `ts`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import Response, StreamingResponse

from iotas.api import stream_tickets
from iotas.api.prefer import preferences
from iotas.api.responses import json_response
from iotas.api.security import CanRead, Permission, Requirement, Rt, context, declare
from iotas.api.sse import KEEPALIVE, KEEPALIVE_SECONDS, POLL_SECONDS, PREAMBLE, resume_point
from iotas.domain import clock
from iotas.domain.errors import Forbidden, NotFound
from iotas.domain.journal import REPORTED_CHANGED, THING_DELETED, THING_EVENT
from iotas.domain.td import TELEMETRY_EVENT
from iotas.runtime import Runtime
from iotas.services.context import Context
from iotas.services.follow import follow_reads
from iotas.services.telemetry_feed import Reader

router = APIRouter(prefix="/api/v1/things", tags=["things"])

BATCH = 500
NO_STORE = {"Cache-Control": "no-store"}
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_LONG_POLL: dict[int | str, dict[str, Any]] = {
    200: {"description": "The next value, once there is one", "content": {"application/json": {}}},
    204: {"description": "Nothing came within the wait the client asked for (Prefer: wait=N)"},
}
_SSE = {
    "response_class": StreamingResponse,
    "responses": {200: {"content": {"text/event-stream": {}}}},
}

Change = tuple[int | None, Any]  # (journal seq, or None for live-only telemetry; the value)


_READ = Requirement(Permission.READ)


@declare(_READ)
async def stream_context(
    request: Request,
    thing_id: str,
    ticket: Annotated[
        str | None,
        Query(description="A stream ticket, for clients that cannot send Authorization"),
    ] = None,
) -> Context:
    """The bearer token (or client certificate), as on every route; or, without an
    Authorization header, a stream ticket for this Thing."""
    if ticket is None or request.headers.get("authorization") is not None:
        return await context(request, _READ)
    actor = await stream_tickets.redeem(request, ticket, thing_id)
    if actor.role == "device":
        raise Forbidden("a device may not read streams")
    actor.must_see(thing_id)
    return Context(actor, f"{request.method} {request.scope['path']}")


StreamCtx = Annotated[Context, Depends(stream_context)]


@router.get("/{thing_id}/stream-ticket")
async def stream_ticket(thing_id: str, request: Request, ctx: CanRead, rt: Rt) -> Response:
    """A ticket that opens this Thing's Server-Sent Events streams, for a short while, where
    no Authorization header can be sent: `.../stream?ticket=...`."""
    await rt.registry.get(thing_id)  # 404 if there is no such Thing
    ticket, expires_us = stream_tickets.issue(request, thing_id)
    return json_response(
        {"ticket": ticket, "expires_at": clock.to_rfc3339(expires_us)}, headers=NO_STORE
    )


# -- properties ------------------------------------------------------------------------------


@router.get("/{thing_id}/properties/{name}/next", responses=_LONG_POLL)
@router.head("/{thing_id}/properties/{name}/next", include_in_schema=False)
async def next_property_value(
    thing_id: str, name: str, request: Request, ctx: CanRead, rt: Rt
) -> Response:
    """Long poll: the property's next reported value."""
    after = await rt.journal.head_seq()
    await rt.registry.get(thing_id)
    if request.method == "HEAD":
        return Response(media_type="application/json", headers=NO_STORE)
    changes = _property_changes(rt, thing_id, name, after)
    return await _first(request, changes)


@router.get("/{thing_id}/properties/{name}/stream", **_SSE)  # type: ignore[arg-type]
async def property_stream(
    thing_id: str,
    name: str,
    ctx: StreamCtx,
    rt: Rt,
    last_event_id: Annotated[str | None, Header(description="Resume after this seq")] = None,
) -> StreamingResponse:
    """Server-Sent Events: each new reported value of the property."""
    after = await _start(rt, last_event_id)
    await rt.registry.get(thing_id)
    return _sse(_property_changes(rt, thing_id, name, after))


async def _property_changes(
    rt: Runtime, thing_id: str, name: str, after: int
) -> AsyncIterator[Change | None]:
    async for event in _thing_events(rt, thing_id, after):
        if event is None:
            yield None
            continue
        patch = event.get("patch") or {}
        if event["type"] != REPORTED_CHANGED or name not in patch or patch[name] is None:
            continue  # (null: the property was removed; there is no value to tell)
        value = patch[name]
        if isinstance(value, dict):
            # A merge patch of an object is a part of it: the whole value is the one now.
            try:
                value = (await rt.registry.get(thing_id)).twin.reported.get(name)
            except NotFound:
                return  # deleted since: its deletion ends the stream anyway
            if value is None:
                continue
        yield event["seq"], value


# -- events ----------------------------------------------------------------------------------


@router.get("/{thing_id}/events/{name}/next", responses=_LONG_POLL)
@router.head("/{thing_id}/events/{name}/next", include_in_schema=False)
async def next_event(thing_id: str, name: str, request: Request, ctx: CanRead, rt: Rt) -> Response:
    """Long poll: the data of the event's next occurrence."""
    if name == TELEMETRY_EVENT:
        await rt.registry.get(thing_id)
        if request.method == "HEAD":
            return Response(media_type="application/json", headers=NO_STORE)
        with rt.telemetry.feed.reader(thing_id) as reader:
            return await _first(request, _telemetry(reader))
    after = await rt.journal.head_seq()
    await rt.registry.get(thing_id)
    if request.method == "HEAD":
        return Response(media_type="application/json", headers=NO_STORE)
    return await _first(request, _event_data(rt, thing_id, name, after))


@router.get("/{thing_id}/events/{name}/stream", **_SSE)  # type: ignore[arg-type]
async def event_stream(
    thing_id: str,
    name: str,
    ctx: StreamCtx,
    rt: Rt,
    last_event_id: Annotated[str | None, Header(description="Resume after this seq")] = None,
) -> StreamingResponse:
    """Server-Sent Events: the data of each occurrence of the event."""
    if name == TELEMETRY_EVENT:
        await rt.registry.get(thing_id)
        return _sse(_telemetry_stream(rt, thing_id))
    after = await _start(rt, last_event_id)
    await rt.registry.get(thing_id)
    return _sse(_event_data(rt, thing_id, name, after))


async def _event_data(
    rt: Runtime, thing_id: str, name: str, after: int
) -> AsyncIterator[Change | None]:
    async for event in _thing_events(rt, thing_id, after):
        if event is None:
            yield None
        elif event["type"] == THING_EVENT and (event.get("patch") or {}).get("name") == name:
            yield event["seq"], event["patch"].get("data")


async def _telemetry_stream(rt: Runtime, thing_id: str) -> AsyncIterator[Change | None]:
    # The reader is taken inside the generator, so it is let go when the stream ends.
    with rt.telemetry.feed.reader(thing_id) as reader:
        async for change in _telemetry(reader):
            yield change


async def _telemetry(reader: Reader) -> AsyncIterator[Change | None]:
    while True:
        try:
            record = await asyncio.wait_for(reader.next(), POLL_SECONDS)
        except TimeoutError:
            yield None
        else:
            yield None, record


# -- shared ----------------------------------------------------------------------------------


async def _start(rt: Runtime, last_event_id: str | None) -> int:
    start = resume_point(None, last_event_id)
    return await rt.journal.head_seq() if start is None else start


async def _thing_events(
    rt: Runtime, thing_id: str, after: int
) -> AsyncIterator[dict[str, Any] | None]:
    """The Thing's journal events after seq `after`, as they come; None after each look that
    found nothing more (about once a second, or at each commit), so a caller can check on
    its client. Ends with the Thing (its deletion is not passed on; the stream ends)."""

    async def read(start: int, limit: int) -> list[dict[str, Any]]:
        return await rt.journal.history(
            thing_id, after_seq=start, since_us=None, until_us=None, limit=limit
        )

    async for events in follow_reads(rt.signal, read, after, batch=BATCH, idle=POLL_SECONDS):
        for event in events:
            if event["type"] == THING_DELETED:
                return
            yield event
        if len(events) < BATCH:
            yield None


async def _first(request: Request, changes: AsyncIterator[Change | None]) -> Response:
    """The first change as the long poll's answer. Nothing is answered before there is
    something to say (node-wot takes any answer as a value), unless the client has left or
    asked to wait no longer (RFC 7240 `Prefer: wait=N`: then 204)."""
    deadline = _wait_deadline(request)
    try:
        async for change in changes:
            if change is not None:
                return json_response(change[1], headers=NO_STORE)
            if await request.is_disconnected() or (
                deadline is not None and time.monotonic() >= deadline
            ):
                return Response(status_code=204, headers=NO_STORE)
    finally:
        await changes.aclose()  # type: ignore[attr-defined]
    raise NotFound("the Thing was deleted while this request waited")


def _wait_deadline(request: Request) -> float | None:
    """When a `Prefer: wait=N` long poll is to give up (None: never)."""
    wait = preferences(request.headers.getlist("prefer")).wait
    return None if wait is None else time.monotonic() + wait


def _sse(changes: AsyncIterator[Change | None]) -> StreamingResponse:
    async def frames() -> AsyncIterator[bytes]:
        yield PREAMBLE
        quiet_since = time.monotonic()
        try:
            async for change in changes:
                if change is not None:
                    seq, value = change
                    head = b"" if seq is None else b"id: %d\n" % seq
                    yield head + b"data: " + orjson.dumps(value) + b"\n\n"
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                    yield KEEPALIVE
                    quiet_since = time.monotonic()
        finally:
            await changes.aclose()  # type: ignore[attr-defined]

    return StreamingResponse(frames(), media_type="text/event-stream", headers=_SSE_HEADERS)
