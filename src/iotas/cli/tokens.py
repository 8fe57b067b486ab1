"""`iotas tokens ...`: operators' API tokens (admin): create, list, revoke."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from iotas.cli import params
from iotas.cli.context import cli_of
from iotas.cli.options import JsonFlag
from iotas.cli.output import short_time

app = typer.Typer(
    no_args_is_help=True,
    help="API tokens for people and scripts: a role (viewer, operator, admin), optionally "
    "limited to namespaces, optionally expiring.",
)


@app.command("create")
def create(
    ctx: typer.Context,
    subject: Annotated[str, typer.Argument(help="Who uses it: recorded in the journal.")],
    role: Annotated[
        str, typer.Option("--role", "-r", help="viewer, operator or admin.")
    ] = "viewer",
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace", "-n", help="Limit it to this namespace (repeatable).", metavar="NS"
        ),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            help="When it stops working: an RFC 3339 time or a time from now (30d, 12h).",
            metavar="WHEN",
        ),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Create a token and print it: the only time it is ever shown."""
    cli = cli_of(ctx, json_)
    until = cli.check(lambda: params.future(expires, "--expires")) if expires else None
    created = cli.run(
        lambda client: client.create_token(subject, role, namespaces=namespace, expires=until)
    )
    if cli.out.json_mode:
        cli.out.json(created)
        return
    scope = ", ".join(created.get("namespaces") or []) or "every namespace"
    cli.out.stderr.print(
        f"Created {created.get('role')} token [bold]{created.get('id')}[/bold] for "
        f"{subject} ({scope}); it is shown only now:"
    )
    # The token alone on stdout, so `token=$(iotas tokens create ...)` works.
    cli.out.console.print(Text(str(created.get("token", ""))), soft_wrap=True)


@app.command("ls")
def list_tokens(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """List tokens (never the tokens themselves)."""
    cli = cli_of(ctx, json_)
    items = cli.run(lambda client: client.list_tokens())
    if cli.out.json_mode:
        cli.out.json(items)
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "SUBJECT", "ROLE", "NAMESPACES", "EXPIRES", "REVOKED"):
        table.add_column(column, no_wrap=True)
    for item in items:
        table.add_row(
            str(item.get("id", "")),
            str(item.get("subject", "")),
            str(item.get("role", "")),
            ", ".join(item.get("namespaces") or []) or "*",
            short_time(item.get("expires_at")) if item.get("expires_at") else "never",
            short_time(item.get("revoked_at")) if item.get("revoked_at") else "-",
        )
    cli.out.console.print(table)


@app.command("rm")
def revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(help="The token id (see `ls`).", metavar="ID")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_: JsonFlag = False,
) -> None:
    """Revoke a token: refused at once on this server, within 5 s on others."""
    cli = cli_of(ctx, json_)
    cli.confirm(f"Revoke token {token_id}?", yes=yes)
    cli.run(lambda client: client.revoke_token(token_id))
    if cli.out.json_mode:
        cli.out.json({"id": token_id, "revoked": True})
    else:
        cli.out.info(f"Revoked token [bold]{token_id}[/bold]")
