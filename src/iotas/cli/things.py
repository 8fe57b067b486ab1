"""`iotas things ...`: list, show, create, patch and delete Things."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from iotas.cli import credentials, params, quarantine
from iotas.cli.context import ExitCode, InputError, cli_of
from iotas.cli.options import Cause, File, JsonFlag, Limit
from iotas.sdk import Client

app = typer.Typer(no_args_is_help=True, help="List, show, create, change and delete Things.")
app.add_typer(credentials.app, name="credentials")
app.command("quarantine")(quarantine.quarantine)
app.command("release")(quarantine.release)

ThingId = Annotated[str, typer.Argument(help="The Thing id, like acme:pump-17.", metavar="ID")]
PAGE_SIZE = 500


@app.command("ls")
def list_things(
    ctx: typer.Context,
    query: Annotated[
        str | None,
        typer.Option("--query", "-q", help="A query, like 'kind == \"pump\"'.", metavar="QUERY"),
    ] = None,
    limit: Limit = 100,
    all_: Annotated[bool, typer.Option("--all", help="Every match, however many.")] = False,
    json_: JsonFlag = False,
) -> None:
    """List Things, optionally filtered by a query."""
    cli = cli_of(ctx, json_)

    async def call(client: Client) -> tuple[list[dict[str, Any]], bool]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            size = PAGE_SIZE if all_ else min(PAGE_SIZE, limit - len(items))
            page = await client.list_things(query, limit=size, cursor=cursor)
            items += page.items
            if not page.next:
                return items, False
            if not all_ and len(items) >= limit:
                return items[:limit], True
            cursor = page.next

    items, more = cli.run(call)
    cli.out.things(items, more=more)


@app.command("get")
def get_thing(
    ctx: typer.Context,
    thing_id: ThingId,
    at: Annotated[
        str | None,
        typer.Option(
            "--at", help="Show it as it was then: RFC 3339, or a time ago like 2h.", metavar="TIME"
        ),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Show a Thing (with its twin), now or at a past instant."""
    cli = cli_of(ctx, json_)
    when = cli.check(lambda: params.instant(at, "--at"))
    cli.out.document(cli.run(lambda client: client.get_thing(thing_id, at=when)))


@app.command("create")
def create_thing(
    ctx: typer.Context,
    thing_id: Annotated[
        str | None, typer.Argument(help="The Thing id (or 'id' in --file).", metavar="ID")
    ] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", "-k", help="What it is, like pump.", metavar="KIND")
    ] = None,
    attr: Annotated[
        list[str] | None,
        typer.Option("--attr", "-a", help="KEY=TEXT or KEY:=JSON (repeatable).", metavar="K=V"),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="KEY=VALUE label (repeatable).", metavar="K=V"),
    ] = None,
    link: Annotated[
        list[str] | None,
        typer.Option("--link", help="REL=TARGET link, like hosted-by=acme:gw-1.", metavar="R=T"),
    ] = None,
    file: File = None,
    cause: Cause = None,
    json_: JsonFlag = False,
) -> None:
    """Create a Thing from options, a JSON file, or both (options win)."""
    cli = cli_of(ctx, json_)
    body: dict[str, Any] = (
        cli.check(lambda: params.json_object(None, file, "Thing")) if file is not None else {}
    )
    if thing_id:
        body["id"] = thing_id
    if kind:
        body["kind"] = kind
    if not isinstance(body.get("id"), str) or not isinstance(body.get("kind"), str):
        raise typer.BadParameter("give the id and --kind (or put them in --file)")
    cli.check(
        lambda: _merge(
            body,
            {
                "attributes": params.attributes(attr),
                "labels": params.pairs(label, "--label"),
                "links": params.links(link),
            },
        )
    )
    why = cli.check(lambda: params.cause(cause))
    thing = cli.run(
        lambda client: client.create_thing(
            body["id"],
            body["kind"],
            attributes=body.get("attributes"),
            labels=body.get("labels"),
            links=body.get("links"),
            description=body.get("description"),
            cause=why,
        )
    )
    if cli.out.json_mode:
        cli.out.json(thing)
    else:
        cli.out.info(f"Created [bold]{thing.get('id')}[/bold] ({thing.get('kind')})")


@app.command("patch")
def patch_thing(
    ctx: typer.Context,
    thing_id: ThingId,
    patch: Annotated[
        str | None,
        typer.Argument(help='A JSON merge patch, like \'{"labels": {"tier": "core"}}\'.'),
    ] = None,
    file: File = None,
    cause: Cause = None,
    json_: JsonFlag = False,
) -> None:
    """Change a Thing's kind, attributes, labels, links or description (JSON merge patch)."""
    cli = cli_of(ctx, json_)
    document = cli.check(lambda: params.json_object(patch, file, "patch"))
    why = cli.check(lambda: params.cause(cause))
    cli.out.document(cli.run(lambda client: client.patch_thing(thing_id, document, cause=why)))


@app.command("rm")
def delete_thing(
    ctx: typer.Context,
    thing_id: ThingId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    cause: Cause = None,
    json_: JsonFlag = False,
) -> None:
    """Delete a Thing (its history stays in the journal)."""
    cli = cli_of(ctx, json_)
    why = cli.check(lambda: params.cause(cause))
    cli.confirm(f"Delete {thing_id}?", yes=yes)
    cli.run(lambda client: client.delete_thing(thing_id, cause=why))
    if cli.out.json_mode:
        cli.out.json({"id": thing_id, "deleted": True})
    else:
        cli.out.info(f"Deleted [bold]{thing_id}[/bold]")


@app.command("adopt")
def adopt_thing(
    ctx: typer.Context,
    source: Annotated[
        str, typer.Argument(help="The Thing Description's URL (http, https, coap) or a file.")
    ],
    thing_id: Annotated[
        str | None,
        typer.Option("--id", help="The Thing id (else derived from the TD's id).", metavar="ID"),
    ] = None,
    poll: Annotated[
        float | None,
        typer.Option("--poll", help="Seconds between reads (default 30).", metavar="SECONDS"),
    ] = None,
    username: Annotated[
        str | None, typer.Option("--username", help="For the TD's basic security.")
    ] = None,
    password_env: Annotated[
        str | None,
        typer.Option(
            "--password-env",
            help="Name of an environment variable holding the password (not the password).",
            metavar="VAR",
        ),
    ] = None,
    token_env: Annotated[
        str | None,
        typer.Option(
            "--token-env",
            help="Name of an environment variable holding the bearer token.",
            metavar="VAR",
        ),
    ] = None,
    cause: Cause = None,
    json_: JsonFlag = False,
) -> None:
    """Manage a third-party Web of Things Thing through its own API, described by its TD."""
    cli = cli_of(ctx, json_)
    why = cli.check(lambda: params.cause(cause))
    credentials = cli.check(lambda: params.secrets(username, password_env, token_env))
    td_url: str | None = source
    td: dict[str, Any] | None = None
    if "://" not in source:
        td_url, td = None, cli.check(lambda: params.json_object(None, Path(source), "TD"))
    result = cli.run(
        lambda client: client.adopt(
            td_url=td_url,
            td=td,
            id=thing_id,
            poll_interval=poll,
            credentials=credentials,
            cause=why,
        )
    )
    if cli.out.json_mode:
        cli.out.json(result)
    else:
        thing = result.get("thing", {})
        cli.out.info(f"Adopted [bold]{thing.get('id')}[/bold] ({thing.get('kind')})")


@app.command("td")
def show_td(ctx: typer.Context, thing_id: ThingId, json_: JsonFlag = False) -> None:
    """Show the Thing Description the directory serves for a Thing."""
    cli = cli_of(ctx, json_)
    cli.out.document(cli.run(lambda client: client.get_td(thing_id)))


@app.command("invoke", hidden=True, context_settings={"ignore_unknown_options": True})
def invoke_action(
    ctx: typer.Context,
    rest: Annotated[list[str] | None, typer.Argument(hidden=True)] = None,
) -> None:
    """Moved: `iotas invoke THING ACTION --input JSON [--wait]`."""
    cli = cli_of(ctx)
    cli.fail(
        "`iotas things invoke` is now `iotas invoke THING ACTION --input JSON [--wait]`: "
        "actions are queued invocations, tracked to their end",
        ExitCode.USAGE,
    )


def _merge(body: dict[str, Any], extra: dict[str, Any]) -> None:
    """Add option values to what --file gave: objects are merged, links appended."""
    for name, value in extra.items():
        if not value:
            continue
        base = body.get(name)
        if base is None:
            body[name] = value
        elif isinstance(base, dict) and isinstance(value, dict):
            body[name] = {**base, **value}
        elif isinstance(base, list) and isinstance(value, list):
            body[name] = [*base, *value]
        else:
            raise InputError(f"{name} in --file has the wrong type to add the options to")
