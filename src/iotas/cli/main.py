"""The `iotas` command: the root app, its global options, and `main()`."""

from __future__ import annotations

from typing import Annotated

import typer

from iotas import __version__
from iotas.cli import (
    broker_config,
    ca,
    claims,
    demo,
    invocations,
    journal,
    rollouts,
    simulate,
    snapshots,
    things,
    tokens,
    twin,
    up,
    watch,
)
from iotas.cli.context import Options

app = typer.Typer(
    name="iotas",
    help="iotas: an open control plane for the Internet of Things.",
    no_args_is_help=True,
    # Tracebacks must never print locals: they hold tokens.
    pretty_exceptions_show_locals=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(things.app, name="things")
app.add_typer(twin.app, name="twin")
app.add_typer(journal.app, name="journal")
app.add_typer(broker_config.app, name="broker-config")
app.add_typer(ca.app, name="ca")
app.add_typer(claims.app, name="claims")
app.add_typer(tokens.app, name="tokens")
app.add_typer(snapshots.app, name="snapshots")
app.add_typer(invocations.app, name="invocations")
app.command("invoke")(invocations.invoke)
app.add_typer(rollouts.app, name="rollouts")
app.command("history")(journal.history)
app.command("watch")(watch.watch)
app.command("up")(up.up)
app.command("demo")(demo.demo)
app.command("simulate")(simulate.simulate)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"iotas {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url", envvar="IOTAS_URL", help="Server URL (default: http://127.0.0.1:8080)."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="IOTAS_TOKEN",
            help="API token (default: ./iotas-data/admin-token if it exists).",
            show_envvar=True,
        ),
    ] = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print JSON only, for scripts (any command).")
    ] = False,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = None,
) -> None:
    ctx.obj = Options(url=url, token=token, json=json_)


def main() -> None:
    app(prog_name="iotas")
