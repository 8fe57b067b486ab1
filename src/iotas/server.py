"""Running the API server (what `iotas up` calls)."""

from __future__ import annotations

import asyncio
import gc
import ssl
from collections.abc import Callable
from typing import Any

import uvicorn

from iotas.aio import cancel_and_wait
from iotas.api.app import create_app
from iotas.api.tls import ClientCertProtocol
from iotas.services.ca import CA_DIR, CertificateAuthority, tls_files
from iotas.settings import Settings

# How long tasks still running when the server has stopped get to finish once cancelled.
LEFTOVER_GRACE_S = 3.0
# How long open connections get to finish their requests once the server is told to stop.
SHUTDOWN_GRACE_S = 5


def serve(settings: Settings, *, before_shutdown: Callable[[], None] | None = None) -> None:
    """Migrate, ensure the admin token and serve until SIGINT or SIGTERM.

    `before_shutdown` runs (in a worker thread) once the server is told to stop and before it
    stops anything: `iotas demo` disconnects its simulated fleet there, so that the broker is
    not torn down under 200 live sessions."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # A long-lived server allocates many short-lived objects per request; collecting the
    # young generation less often (and never scanning start-up objects) costs a little
    # memory and saves measurable CPU on the write path.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        proxy_headers=False,
        # Open streams (SSE followers, a device's long poll) must not hold Ctrl-C for ever.
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        **(https_options(settings) if settings.tls else {}),
    )
    server = _Server(config, before_shutdown)
    loop = _new_loop()
    try:
        loop.run_until_complete(_serve(server))
    finally:
        # Not asyncio.run(): at exit it waits for every cancelled task to finish, and amqtt
        # can leave a connection task that never does, which hung Ctrl-C. What is left after
        # `_serve` had its bounded chance to finish is dropped with the loop.
        loop.close()


def https_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's TLS options: a server certificate from iotas' CA, and client certificates
    from the same CA asked for but optional (operators use tokens, devices may use either)."""
    ca = CertificateAuthority.open(
        settings.data_dir, cert_file=settings.ca_cert_file, key_file=settings.ca_key_file
    )
    cert_file, key_file, trusted = tls_files(ca, settings.data_dir / CA_DIR, [settings.host])
    return {
        "ssl_certfile": str(cert_file),
        "ssl_keyfile": str(key_file),
        "ssl_ca_certs": str(trusted),
        "ssl_cert_reqs": ssl.CERT_OPTIONAL,
        "http": ClientCertProtocol,
    }


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, before_shutdown: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._before_shutdown = before_shutdown

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        if self._before_shutdown is not None:
            await asyncio.to_thread(self._before_shutdown)
        await super().shutdown(sockets)


async def _serve(server: uvicorn.Server) -> None:
    try:
        await server.serve()
    finally:
        current = asyncio.current_task()
        leftovers = [task for task in asyncio.all_tasks() if task is not current]
        await cancel_and_wait(leftovers, LEFTOVER_GRACE_S)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # uvloop is optional; uvicorn uses it when it is there, so do we
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
