"""Counters of ingest: `/api/v1/stats` (JSON) and `/metrics` (Prometheus text format)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from iotas.api.responses import json_response
from iotas.api.security import Ctx, Rt

router = APIRouter(tags=["stats"])


@router.get("/api/v1/stats")
async def stats(ctx: Ctx, rt: Rt) -> Response:
    return json_response(
        {"ingest": rt.stats.to_dict(), "auth": {"failures": dict(rt.auth.failures)}}
    )


@router.get("/metrics")
async def metrics(ctx: Ctx, rt: Rt) -> Response:
    # Behind the same bearer token as the API: Prometheus sends it with `authorization`.
    lines = [
        "# HELP iotas_auth_failures_total API authentications refused, by reason.",
        "# TYPE iotas_auth_failures_total counter",
        *(
            f'iotas_auth_failures_total{{reason="{k}"}} {v}'
            for k, v in sorted(rt.auth.failures.items())
        ),
    ]
    text = rt.stats.prometheus() + "\n".join(lines) + "\n"
    return Response(text, media_type="text/plain; version=0.0.4")
