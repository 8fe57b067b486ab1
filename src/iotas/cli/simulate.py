"""`iotas simulate`: a fleet of simulated devices on the MQTT convention, in this process."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.text import Text

from iotas.cli.context import Cli, ExitCode, cli_of
from iotas.cli.options import JsonFlag
from iotas.sdk import Client
from iotas.sdk.device import DEFAULT_URL, parse_url
from iotas.sim import Fleet, FleetStats

REFRESH = 0.5


def simulate(
    ctx: typer.Context,
    devices: Annotated[int, typer.Option("--devices", "-n", min=1, help="Number of devices.")],
    rate: Annotated[
        float,
        typer.Option("--rate", "-r", min=0.001, help="Telemetry messages per second, in total."),
    ],
    mqtt_url: Annotated[
        str, typer.Option("--mqtt-url", envvar="IOTAS_MQTT_URL", help="The MQTT broker.")
    ] = DEFAULT_URL,
    namespace: Annotated[
        str, typer.Option("--namespace", help="Namespace of the simulated Things' ids.")
    ] = "sim",
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration", "-d", min=0.1, help="Stop after S seconds (default: Ctrl-C).", metavar="S"
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed for reproducible runs.")] = None,
    transmit_only: Annotated[
        float,
        typer.Option("--transmit-only", min=0, max=1, help="Share of send-only devices."),
    ] = 0.1,
    flaky: Annotated[
        float,
        typer.Option("--flaky", min=0, max=1, help="Share of devices that drop their connection."),
    ] = 0.05,
    connect_rate: Annotated[
        float, typer.Option("--connect-rate", min=1, help="Devices connecting per second.")
    ] = 200.0,
    qos: Annotated[int, typer.Option("--qos", min=0, max=1, help="Telemetry QoS.")] = 1,
    ca_file: Annotated[
        str | None, typer.Option("--ca-file", help="CA bundle for an mqtts:// broker.")
    ] = None,
    action_failure_rate: Annotated[
        float,
        typer.Option("--action-failure-rate", min=0, max=1, help="Share of invocations that fail."),
    ] = 0.0,
    action_delay: Annotated[
        float,
        typer.Option(
            "--action-delay", min=0, help="Seconds the slow actions (blink, reboot) take."
        ),
    ] = 1.0,
    no_provision: Annotated[
        bool,
        typer.Option(
            "--no-provision",
            help="Skip the API: no Things or credentials; devices connect without a password "
            "(for a broker that lets anyone in, e.g. benchmarks).",
        ),
    ] = False,
    json_: JsonFlag = False,
) -> None:
    """Simulate a fleet: DEVICES devices sending RATE messages/s in total.

    Creates the missing Things (sim:sensor-00001, sim:pump-00002, ...) and a
    new password for each through the API, connects them to the broker, follows
    and reports their desired state, answers the actions ping, blink and reboot
    (declared in their Thing Model), and shows live counters until --duration
    or Ctrl-C.
    """
    cli = cli_of(ctx, json_)
    try:
        parse_url(mqtt_url)
    except ValueError as exc:
        cli.fail(f"--mqtt-url: {exc}", ExitCode.USAGE)

    async def call(client: Client) -> None:
        fleet = Fleet(
            None if no_provision else client,
            devices=devices,
            rate=rate,
            namespace=namespace,
            mqtt_url=mqtt_url,
            transmit_only_share=transmit_only,
            flaky_share=flaky,
            seed=seed,
            ca_file=ca_file,
            connect_rate=connect_rate,
            qos=qos,
            action_failure_rate=action_failure_rate,
            action_delay=action_delay,
        )
        if not no_provision:
            await _provision(cli, fleet)
        try:
            if cli.out.json_mode:
                await fleet.run(duration)
            else:
                await _run_live(cli, fleet, duration)
        finally:
            # Also after Ctrl-C: the counters are the point of a simulation run.
            _final(cli, fleet.stats())
        stats = fleet.stats()
        if stats.connects == 0:
            reason = fleet.last_error() or "no device got to connect"
            cli.fail(f"no device could connect to {mqtt_url}: {reason}", ExitCode.UNREACHABLE)

    cli.run(call, until_interrupted=True)


async def _provision(cli: Cli, fleet: Fleet) -> None:
    if cli.out.json_mode:
        await fleet.provision()
        return
    columns = (TextColumn("Provisioning"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=cli.out.stderr, transient=True) as bar:
        task = bar.add_task("things", total=len(fleet.things))
        result = await fleet.provision(progress=lambda done, _: bar.update(task, completed=done))
    cli.out.info(
        f"Provisioned {len(fleet.things)} devices ({result.created} created, "
        f"{result.reused} reused), a new password each."
    )


async def _run_live(cli: Cli, fleet: Fleet, duration: float | None) -> None:
    run = asyncio.create_task(fleet.run(duration))
    before = fleet.stats()
    with Live(status_line(before, 0.0), console=cli.out.stderr, transient=True) as live:
        try:
            while not run.done():
                await asyncio.wait({run}, timeout=REFRESH)
                now = fleet.stats()
                spent = now.elapsed - before.elapsed
                rate = (now.acked - before.acked) / spent if spent > 0 else 0.0
                live.update(status_line(now, rate))
                before = now
        finally:
            if not run.done():
                run.cancel()
            await asyncio.gather(run, return_exceptions=True)
    run.result()


def status_line(stats: FleetStats, rate: float) -> Text:
    """One line of counters; `rate` is acknowledgements per second lately."""
    line = Text()
    line.append(f"{stats.elapsed:6.0f} s  ", style="dim")
    line.append(f"{stats.connected}/{stats.devices} connected  ", style="bold")
    line.append(f"sent {stats.sent}  acked {stats.acked} ({rate:.0f}/s)  ")
    line.append(f"queued {stats.queued}  reconnects {stats.reconnects}  ")
    line.append(f"desired {stats.desired_applied}  ")
    line.append(f"actions {stats.actions_succeeded} ok, {stats.actions_failed} failed")
    if stats.dropped or stats.skipped:
        line.append(f"  dropped {stats.dropped}  behind {stats.skipped}", style="yellow")
    if stats.connect_failures:
        line.append(f"  failed connects {stats.connect_failures}", style="red")
    return line


def _final(cli: Cli, stats: FleetStats) -> None:
    if cli.out.json_mode:
        cli.out.json(stats.as_dict())
        return
    rate = stats.acked / stats.elapsed if stats.elapsed > 0 else 0.0
    cli.out.console.print(
        f"Simulated {stats.devices} devices for {stats.elapsed:.1f} s: {stats.submitted} "
        f"messages, {stats.acked} acknowledged ({rate:.0f}/s), {stats.dropped} dropped, "
        f"{stats.reconnects} reconnects ({stats.drops} cut on purpose), "
        f"{stats.desired_applied} desired states applied, {stats.actions_received} actions "
        f"({stats.actions_succeeded} succeeded, {stats.actions_failed} failed), "
        f"{stats.skipped} behind schedule."
    )
