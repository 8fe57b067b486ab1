"""Telemetry of a Thing: push samples, query them (raw or bucketed), read the latest values.

Shapes are in docs/telemetry.md. Time goes out as RFC 3339; a page cut by `limit` carries a
`next` cursor that continues the keys that were cut.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from iotas.api.bodies import body
from iotas.api.models import Samples
from iotas.api.paging import Cursor, instant
from iotas.api.responses import json_response
from iotas.api.security import CanRead, Permission, Rt, requires
from iotas.domain import clock
from iotas.domain import cursor as cursors
from iotas.domain.errors import InvalidInput
from iotas.domain.telemetry import DAY_US, is_key, parse_aggregate, parse_bucket, parse_keys
from iotas.services.context import Context
from iotas.services.telemetry import MAX_POINTS

# Every route states its permission in its `ctx` parameter (security.py).
router = APIRouter(prefix="/api/v1/things", tags=["telemetry"])


@router.post("/{thing_id}/telemetry", status_code=202)
async def post_telemetry(
    thing_id: str,
    request: Request,
    ctx: Annotated[Context, requires(Permission.ADMIN, device=True)],
    rt: Rt,
    samples: Annotated[Any, body(Samples)],
) -> Response:
    stored = await rt.telemetry.ingest_document(thing_id, samples)
    return json_response({"stored": stored}, 202)


@router.get("/{thing_id}/telemetry")
async def query_telemetry(
    thing_id: str,
    ctx: CanRead,
    rt: Rt,
    keys: Annotated[
        str | None, Query(max_length=20_000, description="Comma-separated keys; all when absent")
    ] = None,
    from_: Annotated[
        str | None,
        Query(alias="from", description="RFC 3339, inclusive; default: a day before `to` or now"),
    ] = None,
    to: Annotated[str | None, Query(description="RFC 3339, exclusive; default: no bound")] = None,
    bucket: Annotated[
        str | None, Query(max_length=40, description="Bucket width: 10s, 1m, 1h, 1d")
    ] = None,
    agg: Annotated[
        str | None,
        Query(max_length=40, description="avg, min, max, count or last (default avg)"),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_POINTS, description=f"Points per key (1-{MAX_POINTS})")
    ] = 1000,
    cursor: Cursor = None,
) -> Response:
    to_us = instant(to, "to")
    from_us = instant(from_, "from")
    if from_us is None:
        from_us = (clock.now_us() if to_us is None else to_us) - DAY_US
    bucket_us = None if bucket is None else parse_bucket(bucket)
    if agg is not None and bucket_us is None:
        raise InvalidInput("agg needs a bucket (bucket=1m&agg=avg)", field="agg")
    aggregate = "avg" if agg is None else parse_aggregate(agg)
    series = await rt.telemetry.query(
        thing_id,
        None if keys is None else parse_keys(keys),
        from_us=from_us,
        to_us=to_us,
        bucket_us=bucket_us,
        agg=aggregate,
        limit=limit,
        resume=None if cursor is None else _resume(cursor),
    )
    out: dict[str, list[Any]] = {}
    for key, found in series.items():
        if bucket_us is None:
            out[key] = [[clock.to_rfc3339(ts), value] for ts, value in found.points]
        else:
            out[key] = [{"ts": clock.to_rfc3339(ts), "value": v} for ts, v in found.points]
    more = {key: s.resume_us for key, s in series.items() if s.resume_us is not None}
    return json_response(
        {
            "thing_id": thing_id,
            "from": clock.to_rfc3339(from_us),
            "to": None if to_us is None else clock.to_rfc3339(to_us),
            "bucket": None if bucket is None else bucket.strip(),
            "agg": None if bucket_us is None else aggregate,
            "keys": out,
            "next": cursors.encode({"from": more}) if more else None,
        }
    )


@router.get("/{thing_id}/telemetry/latest")
async def latest_telemetry(thing_id: str, ctx: CanRead, rt: Rt) -> Response:
    latest = await rt.telemetry.latest(thing_id)
    return json_response(
        {key: {"ts": clock.to_rfc3339(ts), "value": value} for key, (ts, value) in latest.items()}
    )


def _resume(cursor: str) -> dict[str, int]:
    starts = cursors.decode(cursor, expect="from", kind=dict)
    if not starts or not all(
        is_key(key) and type(ts) is int and ts >= 0 for key, ts in starts.items()
    ):
        raise InvalidInput(
            "the cursor is not one this query issued: pass back the 'next' value unchanged",
            field="cursor",
        )
    return dict(starts)
