"""`iotas demo`: the server plus a small example fleet, ready to explore.

The server runs in the main thread (so Ctrl-C stops it cleanly); a helper thread waits for
`/healthz`, creates the example Things through the SDK where they are missing, and prints how
to reach them. Running it again on the same data directory keeps what is there.
"""

from __future__ import annotations

import asyncio
import errno
import shlex
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from iotas.cli.up import DataDir, Host, Port, run_server
from iotas.sdk import ApiError, Client, ConnectionFailed

READY_TIMEOUT = 30.0
CAUSE = "iotas demo"


@dataclass(frozen=True, slots=True)
class Example:
    id: str
    kind: str
    attributes: dict[str, Any]
    labels: dict[str, str]
    desired: dict[str, Any] = field(default_factory=dict)
    reported: dict[str, Any] = field(default_factory=dict)
    hosted: bool = True


def fleet() -> list[Example]:
    """A gateway, three pumps and four temperature sensors; some in sync, some pending."""
    things = [
        Example(
            "demo:gw-1",
            "gateway",
            {"site": "plant-7", "model": "EG-400"},
            {"tier": "core"},
            desired={"uplink": "lte"},
            reported={"uplink": "lte", "firmware": "3.2.1"},
            hosted=False,
        )
    ]
    for n, (want, have) in enumerate([(1200, 1200), (1500, 1200), (1800, None)], start=1):
        things.append(
            Example(
                f"demo:pump-{n}",
                "pump",
                {"site": "plant-7", "vendor": "acme", "max_rpm": 3000},
                {"tier": "edge"},
                desired={"speed": want},
                reported={} if have is None else {"speed": have, "firmware": "2.0.4"},
            )
        )
    for n in range(1, 5):
        things.append(
            Example(
                f"demo:temp-{n}",
                "temperature-sensor",
                {"site": "plant-7" if n <= 2 else "plant-9", "unit": "celsius"},
                {"tier": "edge", "zone": "a" if n % 2 else "b"},
                desired={"interval_s": 60},
                reported={"interval_s": 300 if n == 4 else 60, "temp": 20.5 + n},
            )
        )
    return things


async def seed(client: Client) -> int:
    """Create the example Things that do not exist yet; return how many were created."""
    created = 0
    for example in fleet():
        try:
            await client.get_thing(example.id)
            continue
        except ApiError as exc:
            if exc.status != 404:
                raise
        links = [] if not example.hosted else [{"rel": "hosted-by", "target": "demo:gw-1"}]
        await client.create_thing(
            example.id,
            example.kind,
            attributes=example.attributes,
            labels=example.labels,
            links=links,
            cause=CAUSE,
        )
        if example.desired:
            await client.set_desired(example.id, example.desired, cause=CAUSE)
        if example.reported:
            await client.set_reported(example.id, example.reported, cause=CAUSE)
        created += 1
    return created


async def wait_ready(client: Client) -> None:
    """Poll `/healthz` until it answers; bound it with `asyncio.timeout`."""
    while True:
        try:
            await client.health()
            return
        except ConnectionFailed:
            await asyncio.sleep(0.2)


def read_token(data_dir: Path, given: str | None, timeout: float) -> str:
    if given:
        return given
    path = data_dir / "admin-token"
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return path.read_text(encoding="utf-8").strip()


def banner(url: str, token: str, data_dir: Path, created: int) -> str:
    quoted = shlex.quote(token)
    fleet_note = f"created {created} example Things" if created else "example Things already there"
    return f"""
[bold green]iotas demo is running[/bold green] ({fleet_note})

  API       {url}/api/v1   (OpenAPI: {url}/api/v1/openapi.json)
  Token     {token}
  Data      {data_dir}

Try:
  export IOTAS_URL={url} IOTAS_TOKEN={quoted}
  iotas things ls
  iotas things ls -q 'kind == "pump"'
  iotas things get demo:pump-2
  iotas twin set demo:pump-2 '{{"speed": 1600}}' --cause "tuning"
  iotas history demo:pump-2
  iotas watch
  curl -H "Authorization: Bearer $IOTAS_TOKEN" {url}/api/v1/things/demo:pump-1

Ctrl-C to stop.
"""


def prepare(url: str, data_dir: Path, given_token: str | None, console: Console) -> None:
    """Wait for the server, seed the fleet and print the banner (runs in a helper thread)."""

    async def run() -> None:
        async with Client(url, "") as probe, asyncio.timeout(READY_TIMEOUT):
            await wait_ready(probe)
        token = await asyncio.to_thread(read_token, data_dir, given_token, READY_TIMEOUT)
        async with Client(url, token) as client:
            created = await seed(client)
        console.print(banner(url, token, data_dir, created), highlight=False, soft_wrap=True)

    try:
        asyncio.run(run())
    except TimeoutError:
        console.print(f"[bold red]Demo setup failed:[/bold red] no answer from {url}")
    except (ApiError, OSError) as exc:
        console.print(f"[bold red]Demo setup failed:[/bold red] {exc}")


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def demo(
    port: Port = None,
    data_dir: DataDir = None,
    host: Host = None,
) -> None:
    """Run the server with an example fleet (SQLite in the data dir) until Ctrl-C."""
    from iotas.server import serve
    from iotas.settings import Settings

    settings = Settings.from_env(data_dir=data_dir, port=port, host=host)
    console = Console(highlight=False)
    if not port_free(settings.host, settings.port):
        console.print(
            f"[bold red]Error:[/bold red] {settings.host}:{settings.port} is in use; "
            "stop what runs there or pick another --port"
        )
        raise typer.Exit(1)
    url = f"http://{_url_host(settings.host)}:{settings.port}"
    helper = threading.Thread(
        target=prepare,
        args=(url, settings.data_dir, settings.admin_token, console),
        name="iotas-demo-seed",
        daemon=True,
    )
    helper.start()
    run_server(serve, settings)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):  # noqa: S104 - reaching a wildcard bind through loopback
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
