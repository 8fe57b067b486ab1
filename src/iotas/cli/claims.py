"""`iotas claims ...`: provisioning claims (admin): create, list, revoke."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from iotas.cli import params
from iotas.cli.context import cli_of
from iotas.cli.options import JsonFlag
from iotas.cli.output import short_time

app = typer.Typer(
    no_args_is_help=True,
    help="Provisioning claims: a token that lets devices with only a serial provision "
    "themselves as Things from a template.",
)


@app.command("create")
def create(
    ctx: typer.Context,
    namespace: Annotated[
        str, typer.Option("--namespace", help="The namespace of the Things it makes.")
    ],
    kind: Annotated[str, typer.Option("--kind", "-k", help="Their kind, like meter.")],
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="KEY=VALUE label (repeatable).", metavar="K=V"),
    ] = None,
    attr: Annotated[
        list[str] | None,
        typer.Option(
            "--attribute", "--attr", "-a", help="KEY=TEXT or KEY:=JSON (repeatable).", metavar="K=V"
        ),
    ] = None,
    desired: Annotated[
        str | None,
        typer.Option("--desired", help="Initial desired state, a JSON object.", metavar="JSON"),
    ] = None,
    name_pattern: Annotated[
        str | None,
        typer.Option(
            "--name-pattern",
            help="The Thing's name from the device's serial (default '{serial}').",
            metavar="PATTERN",
        ),
    ] = None,
    max_uses: Annotated[
        int | None,
        typer.Option("--max-uses", min=1, help="How many provisionings it allows (default 1)."),
    ] = None,
    unlimited: Annotated[
        bool, typer.Option("--unlimited", help="No limit on uses (give --expires then).")
    ] = False,
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
    """Create a claim and print its token: the only time it is ever shown."""
    cli = cli_of(ctx, json_)
    if unlimited and max_uses is not None:
        raise typer.BadParameter("give --max-uses or --unlimited, not both")
    template: dict[str, Any] = {
        "namespace": namespace,
        "kind": kind,
        "labels": cli.check(lambda: params.pairs(label, "--label")),
        "attributes": cli.check(lambda: params.attributes(attr)),
    }
    if desired is not None:
        template["desired"] = cli.check(lambda: params.json_object(desired, None, "desired state"))
    if name_pattern is not None:
        template["name_pattern"] = name_pattern
    until = cli.check(lambda: params.future(expires, "--expires")) if expires is not None else None
    uses = None if unlimited else (max_uses or 1)
    created = cli.run(lambda client: client.create_claim(template, max_uses=uses, expires=until))
    if cli.out.json_mode:
        cli.out.json(created)
        return
    limit = "no limit" if created.get("max_uses") is None else f"{created.get('max_uses')} uses"
    cli.out.stderr.print(
        f"Created claim [bold]{created.get('id')}[/bold] for {namespace}:"
        f"{created.get('template', {}).get('name_pattern', '{serial}')} ({limit}, expires "
        f"{short_time(created.get('expires_at')) if created.get('expires_at') else 'never'}). "
        "Devices send this token to POST /api/v1/provision (or log in to the embedded broker "
        "as 'claim' with it); it is shown only now:"
    )
    # The token alone on stdout, so `token=$(iotas claims create ...)` works.
    cli.out.console.print(Text(str(created.get("token", ""))), soft_wrap=True)


@app.command("ls")
def list_claims(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """List claims with their templates, uses and state (never their tokens)."""
    cli = cli_of(ctx, json_)
    items = cli.run(lambda client: client.list_claims())
    if cli.out.json_mode:
        cli.out.json(items)
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "THINGS", "KIND", "USES", "STATE", "EXPIRES", "CREATED BY"):
        table.add_column(column, no_wrap=True)
    for item in items:
        template = item.get("template") or {}
        most = item.get("max_uses")
        table.add_row(
            str(item.get("id", "")),
            f"{template.get('namespace')}:{template.get('name_pattern')}",
            str(template.get("kind", "")),
            f"{item.get('uses')}/{'-' if most is None else most}",
            str(item.get("state", "")),
            short_time(item.get("expires_at")) if item.get("expires_at") else "never",
            str(item.get("created_by", "")),
        )
    cli.out.console.print(table)
    active = sum(item.get("state") == "active" for item in items)
    cli.out.stderr.print(Text(f"{len(items)} claims, {active} active", style="dim"))


@app.command("rm")
def revoke(
    ctx: typer.Context,
    claim_id: Annotated[str, typer.Argument(help="The claim id (see `ls`).", metavar="CLAIM")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_: JsonFlag = False,
) -> None:
    """Revoke a claim: no device can provision with it any more (what it made stays)."""
    cli = cli_of(ctx, json_)
    cli.confirm(f"Revoke claim {claim_id}?", yes=yes)
    cli.run(lambda client: client.revoke_claim(claim_id))
    if cli.out.json_mode:
        cli.out.json({"id": claim_id, "revoked": True})
    else:
        cli.out.info(f"Revoked claim [bold]{claim_id}[/bold]")
