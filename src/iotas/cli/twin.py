"""`iotas twin ...`: read a twin and change its desired (or reported) state."""

from __future__ import annotations

from typing import Annotated

import typer

from iotas.cli import params
from iotas.cli.context import cli_of
from iotas.cli.options import Cause, File, JsonFlag
from iotas.sdk import Client

app = typer.Typer(no_args_is_help=True, help="Read and change twins (desired and reported).")

ThingId = Annotated[str, typer.Argument(help="The Thing id.", metavar="ID")]


@app.command("get")
def get_twin(ctx: typer.Context, thing_id: ThingId, json_: JsonFlag = False) -> None:
    """Show a twin: desired, reported, delta, version and sync status."""
    cli = cli_of(ctx, json_)
    cli.out.document(cli.run(lambda client: client.get_twin(thing_id)))


@app.command("set")
def set_twin(
    ctx: typer.Context,
    thing_id: ThingId,
    patch: Annotated[
        str | None, typer.Argument(help="A JSON merge patch, like '{\"speed\": 1200}'.")
    ] = None,
    file: File = None,
    if_match: Annotated[
        int | None,
        typer.Option(
            "--if-match",
            help="Only if the twin is still at this version (else exit 4).",
            metavar="VERSION",
        ),
    ] = None,
    reported: Annotated[
        bool, typer.Option("--reported", help="Patch reported state instead of desired.")
    ] = False,
    cause: Cause = None,
    json_: JsonFlag = False,
) -> None:
    """Merge a patch into the desired state (or, with --reported, the reported state)."""
    cli = cli_of(ctx, json_)
    if reported and if_match is not None:
        raise typer.BadParameter(
            "--if-match applies to desired state only", param_hint="--if-match"
        )
    document = cli.check(lambda: params.json_object(patch, file, "patch"))
    why = cli.check(lambda: params.cause(cause))

    async def call(client: Client) -> dict[str, object]:
        if reported:
            return await client.set_reported(thing_id, document, cause=why)
        return await client.set_desired(thing_id, document, if_match=if_match, cause=why)

    cli.out.document(cli.run(call))
