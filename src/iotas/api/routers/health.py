"""Liveness, without authentication (load balancers and the CLI use it), with what the node
runs: its adapters' health and the cluster-wide controllers it leads (their leases)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from iotas import __version__
from iotas.api.responses import json_response
from iotas.api.security import Permission, Rt, requires

router = APIRouter(tags=["health"])


@router.get("/healthz", dependencies=[requires(Permission.PUBLIC)])
async def healthz(rt: Rt) -> Response:
    return json_response(
        {
            "status": "ok",
            "version": __version__,
            "adapters": rt.adapters.health(),
            "leading": rt.controllers.leading(),
        }
    )
