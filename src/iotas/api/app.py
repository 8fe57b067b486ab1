"""`create_app(settings)`: builds the API; its lifespan runs the node (`iotas.runtime`)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from iotas import __version__
from iotas.api import errors, openapi, swagger
from iotas.api.fast_twin import FastTwinPatch
from iotas.api.public_url import ForwardedHeaders
from iotas.api.routers import (
    adoptions,
    affordances,
    claims,
    credentials,
    events,
    graph,
    health,
    invocations,
    journal,
    quarantine,
    rollouts,
    snapshots,
    stats,
    tdd,
    telemetry,
    things,
    tokens,
    wellknown,
)
from iotas.runtime import running
from iotas.settings import Settings

log = logging.getLogger("iotas")
OPENAPI_URL = "/api/v1/openapi.json"


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The one thing the app keeps: routes reach it through `api.security.runtime`.
        async with running(settings) as rt:
            app.state.runtime = rt
            yield

    app = FastAPI(
        title="iotas",
        version=__version__,
        summary="An open control plane for the Internet of Things",
        openapi_url=OPENAPI_URL,
        docs_url=None,  # swagger.py serves it without a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    errors.install(app)
    app.add_middleware(FastTwinPatch)
    if settings.trusted_proxies:
        # Outermost, so every part of the app sees the client a trusted proxy names.
        app.add_middleware(ForwardedHeaders, trusted=settings.trusted_proxies)
    openapi.install(app)
    swagger.install(app, OPENAPI_URL)
    for router in (
        health.router,
        things.router,
        affordances.router,
        things.bulk_router,
        graph.router,
        journal.router,
        events.router,
        credentials.router,
        telemetry.router,
        stats.router,
        tdd.router,
        wellknown.router,
        adoptions.router,
        tokens.router,
        snapshots.router,
        quarantine.router,
        claims.router,
        rollouts.router,
        invocations.router,
    ):
        app.include_router(router)
    return app
