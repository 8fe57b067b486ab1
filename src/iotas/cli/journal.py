"""`iotas history`, `iotas journal tail|verify`: reading the change journal."""

from __future__ import annotations

from contextlib import aclosing
from typing import Annotated, Any

import typer

from iotas.cli import params
from iotas.cli.context import ExitCode, cli_of
from iotas.cli.options import JsonFlag, Limit
from iotas.sdk import Client

app = typer.Typer(no_args_is_help=True, help="Read and check the change journal.")

PAGE_SIZE = 500
Events = list[dict[str, Any]]


def history(
    ctx: typer.Context,
    thing_id: Annotated[str, typer.Argument(help="The Thing id.", metavar="ID")],
    since: Annotated[
        str | None,
        typer.Option("--since", help="From this time (RFC 3339, or ago: 2h).", metavar="TIME"),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Up to this time.", metavar="TIME")
    ] = None,
    limit: Limit = 100,
    json_: JsonFlag = False,
) -> None:
    """Show every change to one Thing, oldest first."""
    cli = cli_of(ctx, json_)
    start = cli.check(lambda: params.instant(since, "--since"))
    end = cli.check(lambda: params.instant(until, "--until"))

    async def call(client: Client) -> tuple[Events, bool]:
        items: Events = []
        cursor: str | None = None
        while True:
            size = min(PAGE_SIZE, limit - len(items))
            page = await client.history(thing_id, since=start, until=end, limit=size, cursor=cursor)
            items += page.items
            if not page.next or len(items) >= limit:
                return items[:limit], bool(page.next)
            cursor = page.next

    items, more = cli.run(call)
    cli.out.events(items, with_thing=False, more=more)


@app.command("tail")
def tail(
    ctx: typer.Context,
    after: Annotated[
        int | None,
        typer.Option(
            "--after",
            min=0,
            help="Events after this sequence number (default: the last N).",
            metavar="SEQ",
        ),
    ] = None,
    limit: Limit = 20,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C.")
    ] = False,
    json_: JsonFlag = False,
) -> None:
    """Show the latest journal events (or those after --after), and with --follow, new ones."""
    cli = cli_of(ctx, json_)
    streaming = follow and cli.out.json_mode

    async def call(client: Client) -> None:
        items = await _tail(client, after, limit)
        if streaming:
            for event in items:
                cli.out.event_line(event)
        else:
            cli.out.events(items)
        if not follow:
            return
        last = items[-1]["seq"] if items else after
        if last is None:
            last = await _head(client)
        async with aclosing(client.events(after=last)) as stream:
            async for event in stream:
                cli.out.event_line(event)

    cli.run(call, until_interrupted=True)


@app.command("verify")
def verify(ctx: typer.Context, json_: JsonFlag = False) -> None:
    """Check the journal's hash chain: exit 0 when intact, 1 when broken."""
    cli = cli_of(ctx, json_)
    result = cli.run(lambda client: client.verify_journal())
    ok = bool(result.get("ok"))
    if cli.out.json_mode:
        cli.out.json(result)
    elif ok:
        cli.out.info(f"[green]Journal intact[/green]: {result.get('checked')} events checked")
    else:
        cli.out.error(
            f"journal broken at seq {result.get('first_bad_seq')}: {result.get('reason')} "
            f"({result.get('checked')} events checked)"
        )
    raise typer.Exit(ExitCode.OK if ok else ExitCode.FAILED)


async def _tail(client: Client, after: int | None, limit: int) -> Events:
    """`limit` events after `after`; without `after`, the last `limit` events."""
    if after is None:
        after = max(0, await _head(client) - limit)
    kept: list[dict[str, Any]] = []
    seq = after
    while len(kept) < limit:
        page = await client.journal(seq, limit=min(PAGE_SIZE, limit - len(kept)))
        kept.extend(page.items)
        if not page.next or not page.items:
            break
        seq = int(page.items[-1]["seq"])
    return kept


async def _head(client: Client) -> int:
    """The sequence number of the newest event (0 when the journal is empty)."""
    return int((await client.journal_head())["seq"])
