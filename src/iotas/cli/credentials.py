"""`iotas things credentials ...`: add, list and revoke a Thing's device credentials."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from iotas.cli import params
from iotas.cli.context import cli_of
from iotas.cli.options import Cause, JsonFlag
from iotas.cli.output import short_time

app = typer.Typer(
    no_args_is_help=True,
    help="Add, list and revoke the credentials a device uses to connect (MQTT password).",
)

ThingId = Annotated[str, typer.Argument(help="The Thing id, like acme:pump-17.", metavar="ID")]
CredentialId = Annotated[
    str, typer.Argument(help="The credential id (see `ls`).", metavar="CREDENTIAL")
]


@app.command("add")
def add(
    ctx: typer.Context,
    thing_id: ThingId,
    type_: Annotated[
        str, typer.Option("--type", help="Credential type (only password for now).")
    ] = "password",
    cause: Cause = None,
    json_: JsonFlag = False,
) -> None:
    """Create a credential and print its secret: the only time it is ever shown."""
    cli = cli_of(ctx, json_)
    why = cli.check(lambda: params.cause(cause))
    created = cli.run(lambda client: client.create_credential(thing_id, type=type_, cause=why))
    if cli.out.json_mode:
        cli.out.json(created)
        return
    cli.out.stderr.print(
        f"Created {created.get('type')} credential [bold]{created.get('id')}[/bold] for "
        f"[bold]{thing_id}[/bold]. The device connects with username and client id "
        f"{thing_id} and this secret; it is shown only now:"
    )
    # The secret alone on stdout, so `secret=$(iotas things credentials add ID)` works.
    cli.out.console.print(Text(str(created.get("secret", ""))), soft_wrap=True)


@app.command("ls")
def list_credentials(ctx: typer.Context, thing_id: ThingId, json_: JsonFlag = False) -> None:
    """List a Thing's credentials, revoked ones too (never their secrets)."""
    cli = cli_of(ctx, json_)
    items = cli.run(lambda client: client.list_credentials(thing_id))
    if cli.out.json_mode:
        cli.out.json(items)
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "TYPE", "CREATED", "REVOKED"):
        table.add_column(column, no_wrap=True)
    for item in items:
        table.add_row(
            str(item.get("id", "")),
            str(item.get("type", "")),
            short_time(item.get("created_at")),
            _revoked(item),
        )
    cli.out.console.print(table)
    active = sum(item.get("revoked_at") is None for item in items)
    cli.out.stderr.print(Text(f"{len(items)} credentials, {active} active", style="dim"))


@app.command("rm")
def revoke(
    ctx: typer.Context,
    thing_id: ThingId,
    credential_id: CredentialId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    cause: Cause = None,
    json_: JsonFlag = False,
) -> None:
    """Revoke a credential: the device can no longer connect with its secret."""
    cli = cli_of(ctx, json_)
    why = cli.check(lambda: params.cause(cause))
    cli.confirm(f"Revoke {credential_id} of {thing_id}?", yes=yes)
    cli.run(lambda client: client.revoke_credential(thing_id, credential_id, cause=why))
    if cli.out.json_mode:
        cli.out.json({"thing_id": thing_id, "id": credential_id, "revoked": True})
    else:
        cli.out.info(f"Revoked [bold]{credential_id}[/bold] of [bold]{thing_id}[/bold]")


def _revoked(item: dict[str, Any]) -> Text:
    revoked = item.get("revoked_at")
    return Text("-", style="green") if revoked is None else Text(short_time(revoked), style="red")
