"""The W3C WoT Thing Description Directory (WoT Discovery 1.0, section 7.3) under /tdd.

Things API: `GET|HEAD /tdd/things` (offset paging with `Link: rel=next`), `POST /tdd/things`
(anonymous TD), `PUT|GET|HEAD|PATCH|DELETE /tdd/things/{id}`; a registered TD is served as
registered, enriched with its registration information unless `?enriched=false`; search:
`GET /tdd/search/jsonpath`;
notification: `GET /tdd/events[/{type}]` (SSE, resumable with Last-Event-ID). The directory's
own TD is at `/.well-known/wot` (see `wellknown.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response, StreamingResponse

from iotas.api.bodies import body
from iotas.api.models import JSON_TYPE, MERGE_PATCH_TYPE, TD_TYPE, MergePatch, ThingDescription
from iotas.api.public_url import public_base
from iotas.api.responses import json_response
from iotas.api.security import CanAdminister, CanRead, Rt
from iotas.api.sse import KEEPALIVE, PREAMBLE, frame, journal_events, resume_point
from iotas.domain.journal import THING_CREATED, THING_DELETED, THING_UPDATED
from iotas.domain.merge_patch import JSONObject
from iotas.runtime import Runtime
from iotas.services.context import Context
from iotas.services.directory import Endpoints, served, td_id_of
from iotas.store.directory_repo import Entry

PREFIX = "/tdd"
router = APIRouter(prefix=PREFIX, tags=["directory"])


DISCOVERY_CONTEXT = "https://www.w3.org/2022/wot/discovery"
DEFAULT_PAGE = 100
MAX_PAGE = 1000
# Directory notification names (WoT Discovery 7.3.2.4) are the journal's event types.
TD_EVENTS = (THING_CREATED, THING_UPDATED, THING_DELETED)


def endpoints(request: Request) -> Endpoints:
    """Where this iotas is reached: its public URL (never the request's Host header, see
    `api/public_url.py`)."""
    return Endpoints(http_base=public_base(request))


def render(entry: Entry, where: Endpoints, now_us: int, enriched: bool = True) -> JSONObject:
    return served(entry, where, now_us, enriched=enriched)


Enriched = Annotated[
    bool,
    Query(
        description="Add WoT Discovery's registration information (created, modified, "
        "expires, ttl, retrieved) to registered TDs; false: each TD exactly as registered"
    ),
]


def _td_response(doc: JSONObject, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=TD_TYPE)


def _location(td_id: str) -> str:
    return f"{PREFIX}/things/{quote(td_id, safe=':')}"


# HEAD answers the headers GET would (WoT Discovery 7.3.2): the server drops the body.
@router.get("/things")
@router.head("/things")
async def list_tds(
    request: Request,
    ctx: CanRead,
    rt: Rt,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = DEFAULT_PAGE,
    format: Annotated[Literal["array", "collection"], Query()] = "array",
    enriched: Enriched = True,
) -> Response:
    things, total = await rt.directory.page(offset, limit, ctx.actor.namespaces)
    where = endpoints(request)
    now = rt.directory.now()
    members = [render(t, where, now, enriched) for t in things]
    headers = {}
    next_url = None
    if offset + len(things) < total:
        query = {"offset": offset + limit, "limit": limit}
        if format == "collection":
            query["format"] = format  # type: ignore[assignment]
        if not enriched:
            query["enriched"] = "false"  # type: ignore[assignment]
        next_url = f"{PREFIX}/things?{urlencode(query)}"
        headers["Link"] = f'<{next_url}>; rel="next"'
    if format == "array":
        body: Any = members
    else:
        body = {
            "@context": DISCOVERY_CONTEXT,
            "@type": "ThingCollection",
            "@id": f"{PREFIX}/things?{urlencode({'offset': offset, 'limit': limit})}",
            "members": members,
            "total": total,
        }
        if next_url:
            body["next"] = next_url
    return Response(orjson.dumps(body), media_type="application/ld+json", headers=headers or None)


TD = Annotated[Any, body(ThingDescription, TD_TYPE, JSON_TYPE)]


@router.post("/things", status_code=201)
async def create_anonymous(ctx: CanAdminister, rt: Rt, doc: TD) -> Response:
    thing = await rt.directory.create_anonymous(ctx, doc)
    return Response(status_code=201, headers={"Location": _location(td_id_of(thing))})


@router.get("/things/{td_id:path}")
@router.head("/things/{td_id:path}")
async def retrieve(
    td_id: str, request: Request, ctx: CanRead, rt: Rt, enriched: Enriched = True
) -> Response:
    entry = await rt.directory.entry(td_id, ctx.actor)
    return _td_response(render(entry, endpoints(request), rt.directory.now(), enriched))


@router.put("/things/{td_id:path}")
async def create_or_update(td_id: str, ctx: CanAdminister, rt: Rt, doc: TD) -> Response:
    _, created = await rt.directory.put(ctx, td_id, doc)
    if created:
        return Response(status_code=201, headers={"Location": _location(td_id)})
    return Response(status_code=204)


@router.patch("/things/{td_id:path}")
async def partially_update(
    td_id: str,
    ctx: CanAdminister,
    rt: Rt,
    patch: Annotated[Any, body(MergePatch, MERGE_PATCH_TYPE)],
) -> Response:
    await rt.directory.patch(ctx, td_id, patch)
    return Response(status_code=204)


@router.delete("/things/{td_id:path}", status_code=204)
async def delete(td_id: str, ctx: CanAdminister, rt: Rt) -> Response:
    await rt.directory.delete(ctx, td_id)
    return Response(status_code=204)


@router.get("/search/jsonpath")
async def search_jsonpath(
    request: Request,
    ctx: CanRead,
    rt: Rt,
    query: Annotated[str, Query(description="An RFC 9535 JSONPath query, run over every TD")],
) -> Response:
    where = endpoints(request)
    now = rt.directory.now()
    values = await rt.directory.search_jsonpath(
        query, lambda e: render(e, where, now), namespaces=ctx.actor.namespaces
    )
    return json_response(values)


async def _events(
    request: Request,
    ctx: Context,
    rt: Runtime,
    wanted: tuple[str, ...],
    diff: bool,
    last_event_id: str | None,
) -> StreamingResponse:
    start = resume_point(None, last_event_id)
    if start is None:
        start = await rt.journal.head_seq()
    where = endpoints(request)

    async def frames() -> AsyncIterator[bytes]:
        yield PREAMBLE
        stream = journal_events(rt, start, list(wanted), namespaces=ctx.actor.namespaces)
        async for event in stream:
            if event is None:
                yield KEEPALIVE
            else:
                data = await _notification(rt, event, diff, where)
                yield frame(event["seq"], event["type"], orjson.dumps(data))

    return StreamingResponse(
        frames(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _notification(
    rt: Runtime, event: dict[str, Any], diff: bool, where: Endpoints
) -> JSONObject:
    """`{"id": <TD id>}`, and with `diff=true` the whole TD (created) or the changed
    members (updated), as WoT Discovery 7.3.2.4 describes."""
    if event["type"] == THING_DELETED:
        before = event.get("before") or {}
        description = before.get("description") or {}
        given = description.get("id")
        return {"id": given if isinstance(given, str) else event["thing_id"]}
    try:
        entry = await rt.directory.entry_of(event["thing_id"])
    except Exception:  # deleted since: its deletion follows in the stream
        return {"id": event["thing_id"]}
    data: JSONObject = {"id": td_id_of(entry[0])}
    if diff and event["type"] == THING_CREATED:
        data = render(entry, where, rt.directory.now())
    elif diff and event["type"] == THING_UPDATED:
        data["patch"] = (event.get("patch") or {}).get("description")
    return data


_SSE = {
    "response_class": StreamingResponse,
    "responses": {200: {"content": {"text/event-stream": {}}}},
}


@router.get("/events", **_SSE)  # type: ignore[arg-type]
async def all_events(
    request: Request,
    ctx: CanRead,
    rt: Rt,
    diff: Annotated[bool, Query(description="Send the full TD / changed members")] = False,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    return await _events(request, ctx, rt, TD_EVENTS, diff, last_event_id)


@router.get("/events/{event_type}", **_SSE)  # type: ignore[arg-type]
async def typed_events(
    event_type: Literal["thing_created", "thing_updated", "thing_deleted"],
    request: Request,
    ctx: CanRead,
    rt: Rt,
    diff: Annotated[bool, Query(description="Send the full TD / changed members")] = False,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    return await _events(request, ctx, rt, (event_type,), diff, last_event_id)
