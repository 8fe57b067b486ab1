"""`create_app(settings)`: builds the API; the lifespan opens the store and starts services."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from iotas import __version__
from iotas.adapters.wot.client import WotClient
from iotas.aio import cancel_and_wait
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
    journal,
    quarantine,
    snapshots,
    stats,
    tdd,
    telemetry,
    things,
    tokens,
    wellknown,
)
from iotas.api.runtime import Runtime
from iotas.devices import MqttDevices
from iotas.services.auth import Authenticator, TokenAdmin
from iotas.services.ca import CertificateAuthority
from iotas.services.claims import ClaimService
from iotas.services.credentials import CredentialService
from iotas.services.directory import Directory
from iotas.services.graph import Graph
from iotas.services.journal import JournalService
from iotas.services.quarantine import QuarantineService
from iotas.services.registry import Registry
from iotas.services.secret_box import SecretBox
from iotas.services.snapshots import SnapshotService
from iotas.services.stats import IngestStats
from iotas.services.stream import JournalSignal
from iotas.services.telemetry import TelemetryRetention, TelemetryService
from iotas.services.wot import WotBindings
from iotas.settings import Settings
from iotas.store.engine import database_url, open_store
from iotas.wot_things import WotThings

log = logging.getLogger("iotas")
OPENAPI_URL = "/api/v1/openapi.json"


async def open_runtime(settings: Settings) -> Runtime:
    """Open the database, migrate it and build the services (also used by the demo and tests)."""
    signal = JournalSignal()
    url = database_url(settings.database_url, settings.data_dir)
    store = await open_store(url, on_commit=signal.committed)
    registry = Registry(store)
    auth = Authenticator(
        store,
        cache_seconds=settings.token_cache_seconds,
        failure_burst=settings.auth_failure_burst,
        failure_refill=settings.auth_failure_rate,
    )
    credential_service = CredentialService(
        store,
        ca=CertificateAuthority.open(
            settings.data_dir,
            cert_file=settings.ca_cert_file,
            key_file=settings.ca_key_file,
        ),
        certificate_days=settings.certificate_days,
        grace_seconds=settings.certificate_grace_seconds,
    )
    return Runtime(
        settings=settings,
        store=store,
        registry=registry,
        journal=JournalService(store),
        auth=auth,
        signal=signal,
        credentials=credential_service,
        telemetry=TelemetryService(store),
        stats=IngestStats(),
        directory=Directory(registry, store),
        graph=Graph(store),
        tokens=TokenAdmin(store, auth),
        snapshots=SnapshotService(store),
        quarantine=QuarantineService(store, credential_service),
        claims=ClaimService(store, auth, credential_service, settings),
    )


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        rt = await open_runtime(settings)
        admin = await rt.auth.ensure_admin(settings.admin_token, settings.admin_token_path)
        if admin.created:
            # Shown once; afterwards only the 0600 file has it.
            print(
                f"iotas: created the admin token (also in {settings.admin_token_path}):\n"
                f"  {admin.token}",
                flush=True,
            )
        app.state.runtime = rt
        devices = MqttDevices(rt)
        await devices.start()
        wot = WotThings(
            rt,
            WotBindings(
                rt.store, rt.registry, SecretBox.open(settings.data_dir, settings.secret_key)
            ),
            WotClient(timeout=settings.wot_timeout),
        )
        await wot.start()
        app.state.wot = wot
        retention = TelemetryRetention(rt.store, retention_days=settings.telemetry_retention_days)
        retention_task = asyncio.create_task(
            retention.run(settings.telemetry_retention_interval), name="iotas-telemetry-retention"
        )
        compaction_task = asyncio.create_task(
            rt.telemetry.run_compaction(), name="iotas-telemetry-compaction"
        )
        purge_task = asyncio.create_task(rt.directory.run_purge(), name="iotas-tdd-expiry")
        try:
            yield
        finally:
            await cancel_and_wait([retention_task, compaction_task, purge_task])
            await wot.stop()
            await devices.stop()
            await rt.store.dispose()

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
    ):
        app.include_router(router)
    return app
