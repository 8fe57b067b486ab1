"""Liveness, without authentication (load balancers and the CLI use it)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from iotas import __version__
from iotas.api.responses import json_response
from iotas.api.security import Permission, requires

router = APIRouter(tags=["health"])


@router.get("/healthz", dependencies=[requires(Permission.PUBLIC)])
async def healthz() -> Response:
    return json_response({"status": "ok", "version": __version__})
