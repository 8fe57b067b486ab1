"""`iotas up`: run the server in the foreground."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from iotas.settings import Settings

Host = Annotated[
    str | None,
    typer.Option("--host", help="Address to listen on (default: 127.0.0.1, or IOTAS_HOST)."),
]
Port = Annotated[
    int | None,
    typer.Option("--port", "-p", help="Port to listen on (default: 8080, or IOTAS_PORT)."),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Where the database and admin token live (default: ./iotas-data)."
    ),
]


def up(
    host: Host = None,
    port: Port = None,
    data_dir: DataDir = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="postgresql://... for production (default: SQLite in the data dir).",
            metavar="URL",
        ),
    ] = None,
) -> None:
    """Run the iotas server until Ctrl-C.

    Migrates the database first; on the first start, creates the admin token and prints it.
    """
    from iotas.server import serve
    from iotas.settings import Settings

    settings = Settings.from_env(data_dir=data_dir, database_url=database_url, host=host, port=port)
    run_server(serve, settings)


def run_server(serve: Callable[[Settings], None], settings: Settings) -> None:
    """Serve until stopped. Ctrl-C is the normal way to stop, so it exits 0 (uvicorn shuts
    down cleanly, then re-raises the signal, which would otherwise exit 130)."""
    try:
        serve(settings)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
