"""`iotas demo`: the server plus a small example fleet, ready to explore.

The server runs in the main thread (so Ctrl-C stops it cleanly); a helper thread waits for
`/healthz`, creates the example Things through the SDK where they are missing, prints how
to reach them and runs the simulated fleet. Ctrl-C stops the fleet, then the server, and
exits 0. Running it again on the same data directory keeps what is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import shlex
import socket
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from iotas.cli.up import DataDir, Host, Port, run_server, url_host
from iotas.sdk import ApiError, Client, ConnectionFailed
from iotas.sim.fleet import Fleet

READY_TIMEOUT = 30.0
CAUSE = "iotas demo"
# The share of the simulated fleet's invocations that fail, so failures can be seen too.
DEMO_ACTION_FAILURES = 0.1


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


def banner(demo: DemoPorts, token: str, data_dir: Path, created: int) -> str:
    url = demo.url
    quoted = shlex.quote(token)
    fleet_note = f"created {created} example Things" if created else "example Things already there"
    return f"""
[bold green]iotas demo is running[/bold green] ({fleet_note})

  API       {url}/api/v1   (docs: {url}/api/v1/docs)
  MQTT      {demo.mqtt_url}   (embedded broker; devices log in with their Thing id)
  MQTTS     {demo.mqtts_url}   (TLS; devices log in with their iotas certificate)
  Metrics   {url}/metrics   (and {url}/api/v1/stats)
  Token     {token}
  Data      {data_dir}
  Fleet     {demo.devices} simulated devices (sim:...), {demo.rate:g} telemetry messages/s;
            they answer the actions ping, blink and reboot (1 in 10 fails, on purpose)

Try:
  export IOTAS_URL={url} IOTAS_TOKEN={quoted}
  iotas things ls -q 'connected == true' --limit 10
  iotas things ls -q 'kind == "pump"'
  iotas things get demo:pump-2
  iotas twin set demo:pump-2 '{{"speed": 1600}}' --cause "tuning"
  iotas history demo:pump-2
  iotas invoke sim:pump-00002 blink --input '{{"times": 3}}' --wait
  iotas invoke sim:sensor-00001 reboot --input '{{"reason": "demo"}}' --wait
  iotas invocations ls --thing sim:pump-00002
  iotas watch
  curl -H "Authorization: Bearer $IOTAS_TOKEN" "$IOTAS_URL/api/v1/things/sim:pump-00002/telemetry"

Ctrl-C to stop.
"""


@dataclass(frozen=True, slots=True)
class DemoPorts:
    host: str
    port: int
    mqtt_port: int
    devices: int
    rate: float
    mqtts_port: int = 8883

    @property
    def url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}"

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://{url_host(self.host)}:{self.mqtt_port}"

    @property
    def mqtts_url(self) -> str:
        return f"mqtts://{url_host(self.host)}:{self.mqtts_port}"


class DemoFleet:
    """The helper thread: wait for the server, seed the example Things, print the banner, then
    run the simulated fleet until `stop()`.

    Ctrl-C stops the fleet first (each device says "offline" and disconnects), then the
    server: torn down under live sessions, the broker would cut 200 connections that all
    reconnect into a server that is stopping."""

    STOP_WITHIN_S = 15.0

    def __init__(
        self, demo: DemoPorts, data_dir: Path, given_token: str | None, console: Console
    ) -> None:
        self.demo = demo
        self.data_dir = data_dir
        self.given_token = given_token
        self.console = console
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._main, name="iotas-demo-fleet", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def stop(self) -> None:
        """Cancel the setup or the fleet and wait (bounded) for the devices to disconnect."""
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            # The loop may close between the check and the call: then there is nothing to stop.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)
        self._thread.join(self.STOP_WITHIN_S)

    def _main(self) -> None:
        url = self.demo.url
        try:
            asyncio.run(self._run())
        except asyncio.CancelledError:
            pass  # stopped by stop()
        except TimeoutError:
            self.console.print(f"[bold red]Demo setup failed:[/bold red] no answer from {url}")
        except (ApiError, OSError) as exc:
            self.console.print(f"[bold red]Demo setup failed:[/bold red] {exc}")
        finally:
            self._started.set()  # also when asyncio.run failed before _run began

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._started.set()
        demo, url = self.demo, self.demo.url
        async with Client(url, "") as probe, asyncio.timeout(READY_TIMEOUT):
            await wait_ready(probe)
        token = await asyncio.to_thread(read_token, self.data_dir, self.given_token, READY_TIMEOUT)
        async with Client(url, token) as client:
            created = await seed(client)
            # `--devices 0` means no fleet at all (a fleet of none cannot be planned).
            fleet = (
                Fleet(
                    client,
                    devices=demo.devices,
                    rate=demo.rate,
                    mqtt_url=demo.mqtt_url,
                    seed=7,
                    action_failure_rate=DEMO_ACTION_FAILURES,
                )
                if demo.devices
                else None
            )
            if fleet is not None:
                await fleet.provision()
            banner_text = banner(demo, token, self.data_dir, created)
            self.console.print(banner_text, highlight=False, soft_wrap=True)
            if fleet is not None:
                await fleet.run()


def choose_port(host: str, wanted: int, *, strict: bool, what: str, console: Console) -> int:
    """`wanted` if it is free; otherwise, unless the user asked for exactly it, a free one."""
    if port_free(host, wanted):
        return wanted
    if strict:
        console.print(
            f"[bold red]Error:[/bold red] {host}:{wanted} is in use; stop what runs there or "
            f"pick another {what}"
        )
        raise typer.Exit(1)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    console.print(f"{host}:{wanted} is in use; the demo takes {port} instead of it ({what}).")
    return port


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
    mqtt_port: Annotated[
        int | None,
        typer.Option("--mqtt-port", help="Port of the embedded MQTT broker (default 1883)."),
    ] = None,
    mqtts_port: Annotated[
        int | None,
        typer.Option(
            "--mqtts-port", help="Port of its TLS listener for certificates (default 8883)."
        ),
    ] = None,
    devices: Annotated[
        int, typer.Option("--devices", min=0, help="Simulated devices (0: none).")
    ] = 200,
    rate: Annotated[
        float, typer.Option("--rate", min=0.001, help="Their telemetry messages/s, in total.")
    ] = 20.0,
) -> None:
    """Run the server, the embedded MQTT broker, example Things and a simulated fleet (SQLite
    in the data dir) until Ctrl-C. Default ports that are taken are replaced by free ones."""
    from iotas.server import serve
    from iotas.settings import Settings

    settings = Settings.from_env(data_dir=data_dir, port=port, host=host)
    console = Console(highlight=False)
    demo_ports = DemoPorts(
        settings.host,
        choose_port(
            settings.host, settings.port, strict=port is not None, what="--port", console=console
        ),
        choose_port(
            settings.host,
            mqtt_port or 1883,
            strict=mqtt_port is not None,
            what="--mqtt-port",
            console=console,
        ),
        devices,
        rate,
        choose_port(
            settings.host,
            mqtts_port or 8883,
            strict=mqtts_port is not None,
            what="--mqtts-port",
            console=console,
        ),
    )
    settings = replace(
        settings,
        port=demo_ports.port,
        mqtt_host=settings.host,
        mqtt_port=demo_ports.mqtt_port,
        mqtts_port=demo_ports.mqtts_port,
    )
    helper = DemoFleet(demo_ports, settings.data_dir, settings.admin_token, console)
    helper.start()
    try:
        run_server(functools.partial(serve, before_shutdown=helper.stop), settings)
    except typer.Exit as stopped:
        if stopped.exit_code == 0:
            console.print("iotas demo stopped.")
        raise
