"""`iotas up`: run the server in the foreground."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
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
    mqtt_url: Annotated[
        str | None,
        typer.Option(
            "--mqtt-url",
            help="MQTT broker for devices: mqtt://[user:password@]host:port (or IOTAS_MQTT_URL).",
            metavar="URL",
        ),
    ] = None,
    mqtt_port: Annotated[
        int,
        typer.Option("--mqtt-port", help="Port of the embedded MQTT broker for devices."),
    ] = 1883,
    mqtts_port: Annotated[
        int,
        typer.Option(
            "--mqtts-port",
            help="Port of the embedded broker's TLS listener, where devices log in with their "
            "certificates (0: none).",
        ),
    ] = 8883,
    no_broker: Annotated[
        bool,
        typer.Option("--no-broker", help="Run no embedded MQTT broker (API only)."),
    ] = False,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="The URL clients reach the API at, for the links in Thing Descriptions "
            "(default: the address iotas listens on; or IOTAS_PUBLIC_URL).",
            metavar="URL",
        ),
    ] = None,
    trusted_proxies: Annotated[
        str | None,
        typer.Option(
            "--trusted-proxies",
            help="Comma-separated addresses or networks of reverse proxies whose "
            "X-Forwarded-For/-Proto/-Host headers are believed (or IOTAS_TRUSTED_PROXIES).",
            metavar="LIST",
        ),
    ] = None,
    durability: Annotated[
        str | None,
        typer.Option(
            "--durability",
            help="normal: an acknowledged change survives a crash of iotas; full: also a "
            "power cut, for a sync of the SQLite WAL in every commit (or IOTAS_DURABILITY; "
            "PostgreSQL keeps its own settings).",
            metavar="normal|full",
        ),
    ] = None,
    tls: Annotated[
        bool,
        typer.Option(
            "--tls",
            help="Serve HTTPS with a certificate from iotas' CA; devices may then use their "
            "client certificates (or IOTAS_TLS=1).",
        ),
    ] = False,
) -> None:
    """Run the iotas server until Ctrl-C.

    Migrates the database first; on the first start, creates the admin token and prints it.
    """
    from iotas.server import serve
    from iotas.settings import Settings, proxies

    try:
        settings = Settings.from_env(
            data_dir=data_dir,
            database_url=database_url,
            host=host,
            port=port,
            mqtt_url=mqtt_url,
            public_url=public_url,
            trusted_proxies=None if trusted_proxies is None else proxies(trusted_proxies),
            durability=None if durability is None else durability.lower(),
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if tls:
        settings = replace(settings, tls=True)
    if mqtt_url is None and settings.mqtt_url is None:
        settings = replace(
            settings,
            mqtt_port=None if no_broker else mqtt_port,
            mqtts_port=None if no_broker or not mqtts_port else mqtts_port,
        )
    typer.echo(endpoints(settings))
    run_server(serve, settings)


def endpoints(settings: Settings) -> str:
    """What `iotas up` serves, printed as it starts: devices need the MQTT ports and the CLI
    the URL (`export IOTAS_URL=...` when it is not the default)."""
    scheme = "https" if settings.tls else "http"
    url = f"{scheme}://{url_host(settings.host)}:{settings.port}"
    lines = [f"iotas: serving {url}  (API {url}/api/v1, IOTAS_URL={url})"]
    if settings.mqtt_url is not None:
        lines.append(f"  MQTT   devices use the broker at {_without_password(settings.mqtt_url)}")
    elif settings.mqtt_port is None:
        lines.append("  MQTT   none (--no-broker)")
    else:
        mqtt_host = url_host(settings.mqtt_host)
        lines.append(
            f"  MQTT   mqtt://{mqtt_host}:{settings.mqtt_port}  (embedded broker; devices log "
            "in with their Thing id and a secret)"
        )
        if settings.mqtts_port is not None:
            lines.append(
                f"  MQTTS  mqtts://{mqtt_host}:{settings.mqtts_port}  (TLS; devices log in with "
                "their iotas certificate)"
            )
    return "\n".join(lines)


def url_host(host: str) -> str:
    """A host as it goes in a URL that reaches it: a wildcard bind is reached on loopback."""
    if host in ("0.0.0.0", ""):  # noqa: S104 - reaching a wildcard bind through loopback
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _without_password(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not at:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}{sep}{user}@{hostpart}"


def run_server(serve: Callable[[Settings], None], settings: Settings) -> None:
    """Serve until stopped. Ctrl-C is the normal way to stop, so it exits 0 (uvicorn shuts
    down cleanly, then re-raises the signal, which would otherwise exit 130)."""
    try:
        serve(settings)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
