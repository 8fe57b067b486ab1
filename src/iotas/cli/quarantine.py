"""`iotas things quarantine` and `iotas things release`: cut a suspect Thing off, keeping its
state as evidence, and let it back in with a new credential."""

from __future__ import annotations

from typing import Annotated

import typer

from iotas.cli import params
from iotas.cli.context import cli_of
from iotas.cli.credentials import (
    CredentialType,
    CsrFile,
    OutPrefix,
    ThingId,
    show_new_credential,
)
from iotas.cli.options import Cause, JsonFlag


def quarantine(
    ctx: typer.Context,
    thing_id: ThingId,
    reason: Annotated[
        str, typer.Option("--reason", help="Why: kept in the journal and the snapshot.")
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    cause: Cause = None,
    json_: JsonFlag = False,
) -> None:
    """Quarantine a Thing: snapshot it as evidence, revoke every credential (its connection
    is dropped), freeze its desired state and refuse actions to it."""
    cli = cli_of(ctx, json_)
    why = cli.check(lambda: params.cause(cause))
    cli.confirm(f"Quarantine {thing_id}? Its credentials are all revoked.", yes=yes)
    thing = cli.run(lambda client: client.quarantine(thing_id, reason, cause=why))
    if cli.out.json_mode:
        cli.out.json(thing)
        return
    snapshot = (thing.get("quarantine") or {}).get("snapshot")
    cli.out.info(
        f"Quarantined [bold]{thing_id}[/bold]; evidence: snapshot {snapshot} "
        f"(iotas snapshots get {snapshot} --out evidence.json)"
    )


def release(
    ctx: typer.Context,
    thing_id: ThingId,
    type_: CredentialType = "x509",
    csr: CsrFile = None,
    out: OutPrefix = None,
    cause: Cause = None,
    json_: JsonFlag = False,
) -> None:
    """Release a quarantined Thing with a new credential (the old ones stay revoked)."""
    cli = cli_of(ctx, json_)
    why = cli.check(lambda: params.cause(cause))
    request = cli.check(lambda: params.read_text(csr)) if csr is not None else None
    result = cli.run(lambda client: client.release(thing_id, type=type_, csr=request, cause=why))
    show_new_credential(cli, thing_id, result.get("credential") or {}, out)
