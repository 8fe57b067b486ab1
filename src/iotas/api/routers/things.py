"""Things: create, list, read (now or at an instant), patch, delete; and their twins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from iotas.api.bodies import body, version_header
from iotas.api.models import MERGE_PATCH_TYPE, JsonValue, MergePatch, ThingBody, ThingsBody
from iotas.api.openapi import IF_MATCH
from iotas.api.paging import DEFAULT_LIMIT, Cursor, Limit, instant
from iotas.api.responses import from_error, json_response
from iotas.api.security import CanAdminister, CanOperate, CanRead, Permission, Rt, requires
from iotas.domain import cursor as cursors
from iotas.domain import td
from iotas.domain.errors import InvalidInput, NotFound
from iotas.domain.things import Thing
from iotas.domain.twin import Side
from iotas.runtime import Runtime
from iotas.services.context import Context

# Every route states its permission in its `ctx` parameter (security.py); no router-level
# duplicate, since FastAPI resolves dependencies per request.
router = APIRouter(prefix="/api/v1/things", tags=["things"])

Patch = Annotated[Any, body(MergePatch, MERGE_PATCH_TYPE)]


# A Thing's own client certificate reads its twin and reports (docs/security.md).
DeviceReads = Annotated[Context, requires(Permission.READ, device=True)]
DeviceReports = Annotated[Context, requires(Permission.ADMIN, device=True)]


def _thing(thing: Thing, status: int = 200) -> Response:
    return json_response(thing.to_dict(), status, headers={"ETag": f'"{thing.revision}"'})


def _twin(thing: Thing) -> Response:
    return json_response(thing.twin_dict(), headers={"ETag": f'"{thing.twin.version}"'})


@router.post("", status_code=201)
async def create_thing(
    ctx: CanAdminister, rt: Rt, data: Annotated[Any, body(ThingBody)]
) -> Response:
    thing = await rt.registry.create(ctx, data)
    response = _thing(thing, 201)
    response.headers["Location"] = f"/api/v1/things/{thing.id}"
    return response


@router.post(":batch")
async def create_things(
    ctx: CanAdminister, rt: Rt, data: Annotated[Any, body(ThingsBody)]
) -> Response:
    """Create up to 1,000 Things in one call, each journaled as its own creation. The
    answer lists each Thing in the order sent: 201 and its revision, or 409 when it exists
    already (or came earlier in the call). One invalid Thing refuses the whole call (400)."""
    bodies = data["things"]
    results = await rt.registry.create_all(ctx, bodies)
    items: list[dict[str, Any]] = []
    for sent, result in zip(bodies, results, strict=True):
        if isinstance(result, Thing):
            items.append({"id": result.id, "status": 201, "revision": result.revision})
        else:
            items.append({"id": sent["id"], "status": 409, "detail": str(result)})
    created = sum(1 for item in items if item["status"] == 201)
    return json_response({"created": created, "conflicts": len(items) - created, "items": items})


@router.get("")
async def list_things(
    ctx: CanRead,
    rt: Rt,
    q: Annotated[
        str | None, Query(max_length=4096, description="A query, see docs/query.md")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    after_id = None if cursor is None else cursors.decode(cursor, expect="id", kind=str)
    things = await rt.registry.select(
        q, limit=limit + 1, after_id=after_id, namespaces=ctx.actor.namespaces
    )
    more = len(things) > limit
    page = things[:limit]
    next_cursor = cursors.encode({"id": page[-1].id}) if more else None
    return json_response({"items": [t.to_dict() for t in page], "next": next_cursor})


@router.get("/{thing_id}")
async def get_thing(
    thing_id: str,
    ctx: CanRead,
    rt: Rt,
    at: Annotated[
        str | None, Query(description="RFC 3339 instant: the Thing as it was then")
    ] = None,
) -> Response:
    at_us = instant(at, "at")
    if at_us is None:
        return _thing(await rt.registry.get(thing_id))
    return _thing(await rt.journal.thing_at(thing_id, at_us))


@router.patch("/{thing_id}")
async def patch_thing(thing_id: str, ctx: CanAdminister, rt: Rt, patch: Patch) -> Response:
    return _thing(await rt.registry.patch(ctx, thing_id, patch))


@router.delete("/{thing_id}", status_code=204)
async def delete_thing(thing_id: str, ctx: CanAdminister, rt: Rt) -> Response:
    await rt.registry.delete(ctx, thing_id)
    return Response(status_code=204)


@router.get("/{thing_id}/twin")
async def get_twin(thing_id: str, ctx: DeviceReads, rt: Rt) -> Response:
    return _twin(await rt.registry.get(thing_id))


async def twin_patch_response(
    side: Side, thing_id: str, request: Request, ctx: Context, patch: Any
) -> Response:
    """A twin PATCH (also answered by `api/fast_twin.py`, without FastAPI in between)."""
    rt: Runtime = request.app.state.runtime
    if_match = version_header(request.headers.get("if-match"))
    return _twin(await rt.registry.patch_twin(ctx, thing_id, side, patch, if_match=if_match))


_TWIN_PATCH = {"parameters": [IF_MATCH]}


@router.patch("/{thing_id}/twin/desired", openapi_extra=_TWIN_PATCH)
async def patch_desired(thing_id: str, request: Request, ctx: CanOperate, patch: Patch) -> Response:
    return await twin_patch_response("desired", thing_id, request, ctx, patch)


@router.patch("/{thing_id}/twin/reported", openapi_extra=_TWIN_PATCH)
async def patch_reported(
    thing_id: str, request: Request, ctx: DeviceReports, patch: Patch
) -> Response:
    return await twin_patch_response("reported", thing_id, request, ctx, patch)


@router.get("/{thing_id}/history")
async def history(
    thing_id: str,
    ctx: CanRead,
    rt: Rt,
    since: Annotated[str | None, Query(description="RFC 3339 instant, inclusive")] = None,
    until: Annotated[str | None, Query(description="RFC 3339 instant, inclusive")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Response:
    after_seq = 0 if cursor is None else cursors.decode(cursor, expect="seq", kind=int)
    events = await rt.journal.history(
        thing_id,
        after_seq=after_seq,
        since_us=instant(since, "since"),
        until_us=instant(until, "until"),
        limit=limit + 1,
    )
    more = len(events) > limit
    page = events[:limit]
    next_cursor = cursors.encode({"seq": page[-1]["seq"]}) if more else None
    return json_response({"items": page, "next": next_cursor})


# Properties, as the forms of a native Thing's generated TD name them: reading gives the
# reported value, writing sets the desired one (the Thing follows when it can).


@router.get("/{thing_id}/properties")
async def read_all_properties(thing_id: str, ctx: CanRead, rt: Rt) -> Response:
    return json_response((await rt.registry.get(thing_id)).twin.reported)


@router.get("/{thing_id}/properties/{name}")
async def read_property(thing_id: str, name: str, ctx: CanRead, rt: Rt) -> Response:
    reported = (await rt.registry.get(thing_id)).twin.reported
    if name not in reported:
        raise NotFound(f"the Thing {thing_id!r} has reported no property {name[:200]!r}")
    return json_response(reported[name])


_WRITE_REFUSED = {
    "content": {"application/problem+json": {"schema": {"type": "object"}}},
}


@router.put(
    "/{thing_id}/properties/{name}",
    status_code=204,
    responses={
        405: {"description": "The property is readOnly in the Thing's TD", **_WRITE_REFUSED},
        422: {"description": "The value breaks the property's data schema", **_WRITE_REFUSED},
    },
)
async def write_property(
    thing_id: str,
    name: str,
    request: Request,
    ctx: CanOperate,
    value: Annotated[Any, body(JsonValue)],
) -> Response:
    """Set the desired value of a property, if the Thing's TD lets it be written and the
    value fits the property's data schema (a property the TD does not name yet may be set on
    a native Thing: it becomes one)."""
    if value is None:
        raise InvalidInput("a property cannot be set to null; PATCH the desired state to remove it")
    rt: Runtime = request.app.state.runtime
    thing = await rt.registry.get(thing_id)
    schema = td.property_schema(thing, name)
    if schema is None and td.has_own_forms(thing.description):
        raise NotFound(f"the TD of {thing_id!r} has no property {name[:200]!r}")
    if schema is not None:
        try:
            td.check_property_write(schema, name, value)
        except td.PropertyReadOnly as exc:
            refused = from_error(exc, request.url.path)
            refused.headers["Allow"] = "GET, HEAD"  # RFC 9110: a 405 says what is allowed
            return refused
    await rt.registry.patch_twin(ctx, thing_id, "desired", {name: value})
    return Response(status_code=204)


bulk_router = APIRouter(prefix="/api/v1/twins", tags=["things"])


@bulk_router.patch("/desired")
async def patch_desired_where(
    request: Request,
    ctx: CanOperate,
    patch: Patch,
    q: Annotated[str, Query(max_length=4096, description="The Things to change (a query)")],
) -> Response:
    """One desired-state merge patch for every Thing the query selects."""
    rt: Runtime = request.app.state.runtime
    matched, changed = await rt.registry.patch_desired_where(ctx, q, patch)
    return json_response({"matched": matched, "changed": changed})
