"""`iotas watch`: print live events until Ctrl-C."""

from __future__ import annotations

from contextlib import aclosing
from typing import Annotated

import typer

from iotas.cli.context import cli_of
from iotas.cli.options import JsonFlag
from iotas.sdk import Client


def watch(
    ctx: typer.Context,
    query: Annotated[
        str | None,
        typer.Option("--query", "-q", help="Only events of Things matching this query."),
    ] = None,
    types: Annotated[
        str | None,
        typer.Option(
            "--types", "-t", help="Only these event types, comma-separated.", metavar="A,B"
        ),
    ] = None,
    after: Annotated[
        int | None,
        typer.Option("--after", min=0, help="First replay events after this seq.", metavar="SEQ"),
    ] = None,
    count: Annotated[
        int | None,
        typer.Option("--count", "-c", min=1, help="Stop after N events.", metavar="N"),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Print live events as they happen (one JSON line each with --json) until Ctrl-C."""
    cli = cli_of(ctx, json_)
    if not cli.out.json_mode:
        cli.out.stderr.print("[dim]Watching events; Ctrl-C to stop.[/dim]")

    async def call(client: Client) -> None:
        seen = 0
        async with aclosing(client.events(query, types=types, after=after)) as stream:
            async for event in stream:
                cli.out.event_line(event)
                seen += 1
                if count is not None and seen >= count:
                    return

    cli.run(call, until_interrupted=True)
