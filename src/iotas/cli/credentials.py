"""`iotas things credentials ...`: add, list and revoke a Thing's device credentials."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from iotas.cli import params
from iotas.cli.context import Cli, cli_of
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


CredentialType = Annotated[
    str, typer.Option("--type", help="password, or x509 (a certificate from iotas' CA).")
]
CsrFile = Annotated[
    Path | None,
    typer.Option("--csr", help="x509: a PEM CSR made on the device (it keeps its key)."),
]
OutPrefix = Annotated[
    Path | None,
    typer.Option(
        "--out", help="x509: write <OUT>.crt, <OUT>-ca.crt and (without --csr) <OUT>.key (0600)."
    ),
]


@app.command("add")
def add(
    ctx: typer.Context,
    thing_id: ThingId,
    type_: CredentialType = "password",
    csr: CsrFile = None,
    out: OutPrefix = None,
    cause: Cause = None,
    json_: JsonFlag = False,
) -> None:
    """Create a credential and print its secret: the only time it is ever shown."""
    cli = cli_of(ctx, json_)
    why = cli.check(lambda: params.cause(cause))
    request = cli.check(lambda: params.read_text(csr)) if csr is not None else None
    created = cli.run(
        lambda client: client.create_credential(thing_id, type=type_, csr=request, cause=why)
    )
    show_new_credential(cli, thing_id, created, out)


def show_new_credential(cli: Cli, thing_id: str, created: dict[str, Any], out: Path | None) -> None:
    """Print (or write to files) a credential that was just made: shown this once only."""
    if created.get("type") == "x509":
        _x509_files(cli, thing_id, created, out)
        return
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


def _x509_files(cli: Cli, thing_id: str, created: dict[str, Any], out: Path | None) -> None:
    if out is None:
        if cli.out.json_mode:
            cli.out.json(created)
        else:
            cli.out.console.print(Text(str(created.get("certificate", ""))), soft_wrap=True)
            if created.get("private_key"):
                cli.out.console.print(Text(str(created["private_key"])), soft_wrap=True)
        return
    files = {
        Path(f"{out}.crt"): str(created.get("certificate", "")),
        Path(f"{out}-ca.crt"): str(created.get("ca_certificate", "")),
    }
    for path, text in files.items():
        path.write_text(text)
    if created.get("private_key"):
        key = Path(f"{out}.key")
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(str(created["private_key"]))
        files[key] = ""
    if cli.out.json_mode:
        cli.out.json({k: v for k, v in created.items() if k != "private_key"})
    else:
        names = ", ".join(str(p) for p in files)
        cli.out.stderr.print(
            f"Created x509 credential [bold]{created.get('id')}[/bold] for "
            f"[bold]{thing_id}[/bold]; wrote {names}"
        )


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
