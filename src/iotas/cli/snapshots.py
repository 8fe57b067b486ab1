"""`iotas snapshots ls|get`: the forensic snapshots quarantine (or an admin) took."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from iotas.cli.context import ExitCode, cli_of
from iotas.cli.options import JsonFlag

app = typer.Typer(
    no_args_is_help=True,
    help="Forensic snapshots of Things: write-once copies of a Thing's whole state.",
)


@app.command("ls")
def list_snapshots(
    ctx: typer.Context,
    thing_id: Annotated[str, typer.Argument(help="The Thing id.", metavar="ID")],
    json_: JsonFlag = False,
) -> None:
    """List a Thing's snapshots, oldest first."""
    cli = cli_of(ctx, json_)
    items = cli.run(lambda client: client.snapshots(thing_id))
    if cli.out.json_mode:
        cli.out.json(items)
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("SHA256", no_wrap=True)
    table.add_column("TAKEN", no_wrap=True)
    for item in items:
        table.add_row(str(item.get("sha256", "")), str(item.get("taken_at", "")))
    cli.out.console.print(table)


@app.command("get")
def get_snapshot(
    ctx: typer.Context,
    sha256: Annotated[str, typer.Argument(help="The snapshot's sha256 (its name).")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the exact bytes to this file (default: stdout)."),
    ] = None,
) -> None:
    """Download a snapshot: its exact bytes (JSON, never reformatted, so that they still
    hash to its name), checked against its sha256."""
    cli = cli_of(ctx)
    body = cli.run(lambda client: client.snapshot(sha256))
    if hashlib.sha256(body).hexdigest() != sha256.lower():
        cli.fail("the bytes received do not match the snapshot's sha256", ExitCode.FAILED)
    if out is not None:
        out.write_bytes(body)
        cli.out.info(f"Wrote snapshot {sha256} to {out} ({len(body)} bytes)")
        return
    sys.stdout.buffer.write(body)
    sys.stdout.buffer.flush()
