"""`iotas invoke` and `iotas invocations ...`: actions of Things, tracked to their end."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from iotas.cli import params
from iotas.cli.context import Cli, ExitCode, cli_of
from iotas.cli.options import Cause, JsonFlag, Limit
from iotas.cli.output import short_time
from iotas.sdk.client import FINAL

app = typer.Typer(
    no_args_is_help=True,
    help="Invocations of actions: list, show and cancel them (start one with `iotas invoke`).",
)

# Final statuses that count as a failure of the command (`--wait`).
FAILED = frozenset({"failed", "expired", "rejected", "cancelled"})
# How long `--wait` waits in all, in requests of at most a minute each.
WAIT_DEFAULT = 300.0
STYLE = {
    "succeeded": "green",
    "failed": "red",
    "expired": "yellow",
    "rejected": "red",
    "cancelled": "dim",
}

InvocationId = Annotated[str, typer.Argument(help="The invocation id (inv-...).", metavar="ID")]


def invoke(
    ctx: typer.Context,
    thing_id: Annotated[str, typer.Argument(help="The Thing id.", metavar="THING")],
    action: Annotated[str, typer.Argument(help="The action's name (in its TD or model).")],
    input_: Annotated[
        str | None,
        typer.Option("--input", "-i", help="The input, as JSON.", metavar="JSON"),
    ] = None,
    ttl: Annotated[
        float | None,
        typer.Option("--ttl", min=0.001, help="Seconds it may wait for the Thing.", metavar="S"),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="The same key within 24 h: the same invocation."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="Wait until it ends; exit 1 unless it succeeded.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=0.1, help="With --wait: give up after S seconds.", metavar="S"
        ),
    ] = WAIT_DEFAULT,
    cause: Cause = None,
    json_: JsonFlag = False,
) -> None:
    """Invoke an action of a Thing: queued until the Thing takes it (delivered when an
    offline Thing is back, unless --ttl passes first); prints the invocation."""
    cli = cli_of(ctx, json_)
    why = cli.check(lambda: params.cause(cause))
    value = cli.check(lambda: params.json_value(input_, "--input")) if input_ is not None else None

    async def call(client: Any) -> dict[str, Any]:
        created: dict[str, Any] = await client.invoke(
            thing_id, action, value, ttl=ttl, idempotency_key=idempotency_key, cause=why
        )
        if not wait:
            return created
        return await _until_final(client, str(created["id"]), created, timeout)

    result = cli.run(call)
    _show(cli, result)
    if wait:
        _exit_for(result)


@app.command("get")
def get(
    ctx: typer.Context,
    invocation_id: InvocationId,
    wait: Annotated[
        float | None,
        typer.Option(
            "--wait", "-w", min=0, help="Wait up to S seconds for it to end.", metavar="S"
        ),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Show one invocation (with --wait, once it ended or S seconds passed)."""
    cli = cli_of(ctx, json_)

    async def call(client: Any) -> dict[str, Any]:
        found: dict[str, Any] = await client.invocation(invocation_id)
        if wait is None:
            return found
        return await _until_final(client, invocation_id, found, wait)

    _show(cli, cli.run(call))


@app.command("ls")
def list_invocations(
    ctx: typer.Context,
    thing: Annotated[str | None, typer.Option("--thing", "-t", help="Of this Thing only.")] = None,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", help="Only in this status (repeatable, or a,b)."),
    ] = None,
    rollout: Annotated[str | None, typer.Option("--rollout", help="Of this rollout only.")] = None,
    limit: Limit = 50,
    json_: JsonFlag = False,
) -> None:
    """List invocations, oldest first."""
    cli = cli_of(ctx, json_)
    states = [s for given in status or [] for s in given.split(",") if s] or None
    page = cli.run(
        lambda client: client.invocations(thing=thing, status=states, rollout=rollout, limit=limit)
    )
    if cli.out.json_mode:
        cli.out.json({"items": page.items, "next": page.next})
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "THING", "ACTION", "STATUS", "CREATED", "UPDATED", "ATTEMPTS"):
        table.add_column(column, no_wrap=True)
    for item in page.items:
        table.add_row(
            str(item.get("id", "")),
            str(item.get("thing", "")),
            str(item.get("action", "")),
            _status(item),
            short_time(item.get("created")),
            short_time(item.get("updated")),
            str(item.get("attempts", "")),
        )
    cli.out.console.print(table)
    more = " (more: use --limit)" if page.next else ""
    cli.out.stderr.print(Text(f"{len(page.items)} invocations{more}", style="dim"))


@app.command("cancel")
def cancel(
    ctx: typer.Context, invocation_id: InvocationId, cause: Cause = None, json_: JsonFlag = False
) -> None:
    """Cancel an invocation that has not ended (a Thing that has it already may still run
    it; its result is then ignored)."""
    cli = cli_of(ctx, json_)
    why = cli.check(lambda: params.cause(cause))
    _show(cli, cli.run(lambda client: client.cancel_invocation(invocation_id, cause=why)))


async def _until_final(
    client: Any, invocation_id: str, current: dict[str, Any], seconds: float
) -> dict[str, Any]:
    """Long-poll until it ended or `seconds` passed (each request waits at most a
    minute: proxies cut longer ones)."""
    deadline = time.monotonic() + seconds
    while current.get("status") not in FINAL:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        current = await client.invocation(invocation_id, wait=min(left, 60.0))
    return current


def _status(item: dict[str, Any]) -> Text:
    status = str(item.get("status", ""))
    progress = item.get("progress")
    shown = f"{status} {progress:g}%" if status == "running" and progress is not None else status
    return Text(shown, style=STYLE.get(status, ""))


def _show(cli: Cli, item: dict[str, Any]) -> None:
    if cli.out.json_mode:
        cli.out.json(item)
        return
    line = Text()
    line.append(f"{item.get('id')} ", style="bold")
    line.append(f"{item.get('action')} on {item.get('thing')}: ")
    line.append_text(_status(item))
    cli.out.console.print(line)
    if item.get("output") is not None:
        cli.out.document({"output": item["output"]})
    if item.get("error") is not None:
        cli.out.document({"error": item["error"]})


def _exit_for(item: dict[str, Any]) -> None:
    status = item.get("status")
    if status == "succeeded":
        return
    if status in FAILED:
        raise typer.Exit(ExitCode.FAILED)
    raise typer.Exit(ExitCode.PENDING)  # --wait gave up: it has not ended yet
