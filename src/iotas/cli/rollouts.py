"""`iotas rollouts ...`: carry a change to many Things in waves (docs/commands.md)."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from iotas.cli import params
from iotas.cli.context import Cli, InputError, cli_of
from iotas.cli.options import Cause, File, JsonFlag, Limit
from iotas.cli.output import short_time
from iotas.sdk.client import Client

app = typer.Typer(
    no_args_is_help=True,
    help="Rollouts: one change (an action now) carried to the Things of a query, in waves, "
    "with thresholds, pause and resume.",
)

FINAL = ("succeeded", "halted", "cancelled")
_WAVE = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<pct>%)?(?:\+(?P<wait>\d+(?:\.\d+)?)s?)?$")
_WINDOW = re.compile(r"^(?P<start>\d\d:\d\d)-(?P<end>\d\d:\d\d)(?:@(?P<tz>\S+))?$")
Id = Annotated[str, typer.Argument(help="The rollout id (see `ls`).", metavar="ROLLOUT")]


def wave(text: str) -> dict[str, Any]:
    """`50` (Things), `10%` (of the target) and an optional wait after it: `10%+300`."""
    match = _WAVE.match(text.strip())
    if match is None:
        raise InputError(f"--wave {text!r}: give N, P% or either with +SECONDS (10%+300)")
    found: dict[str, Any] = (
        {"percent": float(match["n"])} if match["pct"] else {"count": int(float(match["n"]))}
    )
    if match["wait"]:
        found["wait"] = float(match["wait"])
    return found


def window(text: str) -> dict[str, Any]:
    """`22:00-04:00` or `22:00-04:00@Europe/Paris`."""
    match = _WINDOW.match(text.strip())
    if match is None:
        raise InputError(f"--window {text!r}: give HH:MM-HH:MM, optionally @TIMEZONE")
    return {"start": match["start"], "end": match["end"], "tz": match["tz"] or "UTC"}


def build_spec(options: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The spec from `--spec`/`--file` (`base`) with the options given on top."""
    spec = dict(base)
    if options["action"] is not None:
        change: dict[str, Any] = {"type": "action", "action": options["action"]}
        if options["input"] is not None:
            change["input"] = params.json_value(options["input"], "--input")
        if options["ttl"] is not None:
            change["ttl"] = options["ttl"]
        spec["change"] = change
    for key in ("name", "target", "max_in_flight", "rate_per_minute", "timeout", "start_at"):
        if options[key] is not None:
            spec[key] = options[key]
    if options["waves"]:
        spec["waves"] = [wave(text) for text in options["waves"]]
    if options["success"] is not None:
        spec["success_threshold"] = {"percent": options["success"]}
    if options["fail_percent"] is not None or options["fail_count"] is not None:
        failure: dict[str, Any] = (
            {"percent": options["fail_percent"]}
            if options["fail_percent"] is not None
            else {"count": options["fail_count"]}
        )
        if options["min_executed"] is not None:
            failure["min_executed"] = options["min_executed"]
        spec["failure_threshold"] = failure
    if options["window"] is not None:
        spec["window"] = window(options["window"])
    if options["continuous"]:
        spec["continuous"] = True
    return spec


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", help="What it is for.")] = None,
    target: Annotated[
        str | None, typer.Option("--target", "-q", help="The Things: a query (docs/query.md).")
    ] = None,
    action: Annotated[str | None, typer.Option("--action", help="The action to invoke.")] = None,
    input_: Annotated[
        str | None, typer.Option("--input", help="Its input, JSON.", metavar="JSON")
    ] = None,
    ttl: Annotated[float | None, typer.Option("--ttl", help="Seconds to deliver it.")] = None,
    waves: Annotated[
        list[str] | None,
        typer.Option("--wave", "-w", help="N, P% or P%+WAIT (repeatable; the last repeats)."),
    ] = None,
    max_in_flight: Annotated[int | None, typer.Option("--max-in-flight", min=1)] = None,
    rate: Annotated[int | None, typer.Option("--rate", min=1, help="Starts per minute.")] = None,
    success: Annotated[
        float | None, typer.Option("--success", help="Percent of a wave before the next.")
    ] = None,
    fail_percent: Annotated[
        float | None, typer.Option("--fail-percent", help="Halt at this percent failed.")
    ] = None,
    fail_count: Annotated[
        int | None, typer.Option("--fail-count", help="Halt at this many failed.")
    ] = None,
    min_executed: Annotated[
        int | None, typer.Option("--min-executed", help="Finished before percent counts.")
    ] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Seconds per Thing.")] = None,
    start_at: Annotated[
        str | None, typer.Option("--start-at", help="RFC 3339 time or from now (2h).")
    ] = None,
    window_: Annotated[
        str | None, typer.Option("--window", help="Daily HH:MM-HH:MM[@TZ].", metavar="WINDOW")
    ] = None,
    continuous: Annotated[
        bool, typer.Option("--continuous", help="Things that match later join.")
    ] = False,
    spec_text: Annotated[
        str | None, typer.Option("--spec", help="The whole spec, JSON.", metavar="JSON")
    ] = None,
    file: File = None,
    cause: Cause = None,
    json_: JsonFlag = False,
) -> None:
    """Start a rollout (scheduled when --start-at is later)."""
    cli = cli_of(ctx, json_)
    base = (
        cli.check(lambda: params.json_object(spec_text, file, "rollout spec"))
        if spec_text is not None or file is not None
        else {}
    )
    options = {
        "name": name,
        "target": target,
        "action": action,
        "input": input_,
        "ttl": ttl,
        "waves": waves,
        "max_in_flight": max_in_flight,
        "rate_per_minute": rate,
        "success": success,
        "fail_percent": fail_percent,
        "fail_count": fail_count,
        "min_executed": min_executed,
        "timeout": timeout,
        "start_at": None
        if start_at is None
        else cli.check(lambda: params.future(start_at, "--start-at")),
        "window": window_,
        "continuous": continuous,
    }
    spec = cli.check(lambda: build_spec(options, base))
    made = cli.run(lambda client: client.rollouts.create(spec, cause=cause))
    if cli.out.json_mode:
        cli.out.json(made)
        return
    sizes = ", ".join(str(w.get("size")) for w in made.get("waves", []))
    cli.out.info(
        f"Rollout [bold]{made.get('id')}[/bold] {made.get('status')}: "
        f"{made.get('total')} Things in waves of {sizes or '-'}"
    )


@app.command("ls")
def list_rollouts(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None, typer.Option("--status", "-s", help="Keep these statuses.")
    ] = None,
    limit: Limit = 100,
    json_: JsonFlag = False,
) -> None:
    """List rollouts, newest first."""
    cli = cli_of(ctx, json_)
    page = cli.run(lambda client: client.rollouts.list(status=status, limit=limit))
    if cli.out.json_mode:
        cli.out.json(page.items)
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "NAME", "STATUS", "DONE", "FAILED", "TOTAL", "CREATED"):
        table.add_column(column, no_wrap=True)
    for item in page.items:
        counts = item.get("counts") or {}
        table.add_row(
            str(item.get("id", "")),
            str(item.get("name", "")),
            str(item.get("status", "")),
            str(counts.get("succeeded", 0)),
            str(counts.get("failed", 0)),
            str(item.get("total", 0)),
            short_time(item.get("created")),
        )
    cli.out.console.print(table)


@app.command("get")
def get(ctx: typer.Context, rollout_id: Id, json_: JsonFlag = False) -> None:
    """A rollout with its counts per status and per wave."""
    cli = cli_of(ctx, json_)
    cli.out.document(cli.run(lambda client: client.rollouts.get(rollout_id)))


def _command(name: str, doc: str) -> None:
    def command(
        ctx: typer.Context, rollout_id: Id, cause: Cause = None, json_: JsonFlag = False
    ) -> None:
        cli = cli_of(ctx, json_)
        done = cli.run(lambda client: getattr(client.rollouts, name)(rollout_id, cause=cause))
        if cli.out.json_mode:
            cli.out.json(done)
        else:
            cli.out.info(f"Rollout [bold]{rollout_id}[/bold] {done.get('status')}")

    command.__doc__ = doc
    app.command(name)(command)


_command("pause", "Pause: no more Things start; those in flight finish.")
_command("resume", "Resume a paused rollout.")
_command("cancel", "Cancel: pending Things never start; queued invocations are cancelled.")


@app.command("watch")
def watch(
    ctx: typer.Context,
    rollout_id: Id,
    every: Annotated[float, typer.Option("--every", min=0.1, help="Seconds between reads.")] = 1.0,
    json_: JsonFlag = False,
) -> None:
    """Live progress per wave until the rollout ends (JSON lines with --json)."""
    cli = cli_of(ctx, json_)
    last = cli.run(lambda client: _watch(cli, client, rollout_id, every), until_interrupted=True)
    if not cli.out.json_mode:
        cli.out.info(f"Rollout [bold]{rollout_id}[/bold] {last.get('status')}")


async def _watch(cli: Cli, client: Client, rollout_id: str, every: float) -> dict[str, Any]:
    if cli.out.json_mode:
        seen: dict[str, Any] | None = None
        while True:
            got = await client.rollouts.get(rollout_id)
            if got != seen:
                cli.out.json(got, compact=True)
                seen = got
            if _over(got):
                return got
            await asyncio.sleep(every)
    got = await client.rollouts.get(rollout_id)
    with Live(progress_view(got), console=cli.out.console, auto_refresh=False) as live:
        while not _over(got):
            await asyncio.sleep(every)
            got = await client.rollouts.get(rollout_id)
            live.update(progress_view(got), refresh=True)
    return got


def _over(rollout: dict[str, Any]) -> bool:
    counts = rollout.get("counts") or {}
    return rollout.get("status") in FINAL and not counts.get("in_flight")


def progress_view(rollout: dict[str, Any]) -> Group:
    """A bar per wave: finished of its size, with its counts."""
    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:>6.0f}/{task.total:<6.0f} {task.fields[counts]}"),
    )
    for wave in rollout.get("waves", []):
        counts = wave.get("counts") or {}
        finished = sum(counts.get(s, 0) for s in ("succeeded", "failed", "cancelled"))
        opened = "open" if wave.get("opens") else "waiting"
        bars.add_task(
            f"wave {wave.get('wave')} ({opened})",
            total=max(int(wave.get("size") or 0), 1),
            completed=finished,
            counts=f"ok {counts.get('succeeded', 0)}  failed {counts.get('failed', 0)}  "
            f"running {counts.get('in_flight', 0)}",
        )
    head = Text(
        f"{rollout.get('name')} [{rollout.get('id')}] {rollout.get('status')}"
        + (f" ({rollout.get('reason')})" if rollout.get("reason") else ""),
        style="bold",
    )
    return Group(head, bars)
