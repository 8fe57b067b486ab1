"""Running the API server (what `iotas up` calls)."""

from __future__ import annotations

import uvicorn

from iotas.api.app import create_app
from iotas.settings import Settings


def serve(settings: Settings) -> None:
    """Migrate, ensure the admin token and serve until SIGINT or SIGTERM."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        proxy_headers=False,
    )
    uvicorn.Server(config).run()
