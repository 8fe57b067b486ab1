"""Counters of ingest: `/api/v1/stats` (JSON) and `/metrics` (Prometheus text format)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from starlette.responses import Response

from iotas.api.responses import json_response
from iotas.api.security import Permission, Rt, requires
from iotas.services.context import Context

# Counters of the whole installation: any role, never a namespace-limited token.
InstallationRead = Annotated[Context, requires(Permission.READ, installation=True)]

router = APIRouter(tags=["stats"])


@router.get("/api/v1/stats")
async def stats(ctx: InstallationRead, rt: Rt) -> Response:
    return json_response(
        {
            "ingest": rt.stats.to_dict(),
            "telemetry": rt.telemetry.counters(),
            "auth": {"failures": dict(rt.auth.failures)},
        }
    )


@router.get("/metrics")
async def metrics(ctx: InstallationRead, rt: Rt) -> Response:
    # Behind the same bearer token as the API: Prometheus sends it with `authorization`.
    telemetry = rt.telemetry.counters()
    lines = [
        "# HELP iotas_telemetry_samples_stored_total Telemetry samples committed.",
        "# TYPE iotas_telemetry_samples_stored_total counter",
        f"iotas_telemetry_samples_stored_total {telemetry['stored_samples']}",
        "# HELP iotas_telemetry_samples_dropped_total Samples of Things that do not exist.",
        "# TYPE iotas_telemetry_samples_dropped_total counter",
        f"iotas_telemetry_samples_dropped_total {telemetry['dropped_samples']}",
        "# HELP iotas_telemetry_staged_samples Samples staged since the last move (SQLite).",
        "# TYPE iotas_telemetry_staged_samples gauge",
        f"iotas_telemetry_staged_samples {telemetry['staged_samples']}",
        "# HELP iotas_telemetry_moves_total Moves of staged samples into the series index.",
        "# TYPE iotas_telemetry_moves_total counter",
        f"iotas_telemetry_moves_total {telemetry['moves']}",
        "# HELP iotas_telemetry_move_failures_total Moves that failed (tried again).",
        "# TYPE iotas_telemetry_move_failures_total counter",
        f"iotas_telemetry_move_failures_total {telemetry['move_failures']}",
        "# HELP iotas_auth_failures_total API authentications refused, by reason.",
        "# TYPE iotas_auth_failures_total counter",
        *(
            f'iotas_auth_failures_total{{reason="{k}"}} {v}'
            for k, v in sorted(rt.auth.failures.items())
        ),
    ]
    text = rt.stats.prometheus() + "\n".join(lines) + "\n"
    return Response(text, media_type="text/plain; version=0.0.4")
