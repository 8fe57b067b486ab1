"""Everything the CLI prints: JSON for scripts (`--json`), rich tables for people.

In JSON mode stdout carries only JSON (one document, or one line per event when streaming);
messages and errors go to stderr.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

SUMMARY_WIDTH = 60
REQUEST_LINE = re.compile(r"^[A-Z]+ /\S*$")


class Output:
    def __init__(self, *, json_mode: bool) -> None:
        self.json_mode = json_mode
        # Consoles are made per invocation and write to whatever sys.stdout is then.
        self.console = Console(highlight=False)
        self.stderr = Console(stderr=True, highlight=False)

    # -- JSON ------------------------------------------------------------------------------

    def json(self, value: Any, *, compact: bool = False) -> None:
        option = orjson.OPT_SORT_KEYS if compact else orjson.OPT_INDENT_2
        sys.stdout.write(orjson.dumps(value, option=option).decode() + "\n")
        sys.stdout.flush()

    def document(self, value: Any) -> None:
        """A single object: JSON in JSON mode, pretty JSON for people."""
        if self.json_mode:
            self.json(value)
        else:
            self.console.print_json(orjson.dumps(value).decode())

    # -- messages --------------------------------------------------------------------------

    def info(self, message: str) -> None:
        """A line for people; in JSON mode it goes to stderr so stdout stays parseable."""
        (self.stderr if self.json_mode else self.console).print(message)

    def error(self, message: str, problem: dict[str, Any] | None = None) -> None:
        if self.json_mode and problem is not None:
            sys.stderr.write(orjson.dumps(problem).decode() + "\n")
        else:
            self.stderr.print(Text(f"Error: {message}", style="bold red"))

    # -- tables ----------------------------------------------------------------------------

    def things(self, items: list[dict[str, Any]], *, more: bool = False) -> None:
        if self.json_mode:
            self.json(items)
            return
        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("ID", no_wrap=True)
        table.add_column("KIND")
        table.add_column("STATUS")
        table.add_column("VERSION", justify="right")
        table.add_column("LABELS")
        for thing in items:
            twin = thing.get("twin") or {}
            status = str(twin.get("status", ""))
            table.add_row(
                str(thing.get("id", "")),
                str(thing.get("kind", "")),
                Text(status, style=STATUS_STYLE.get(status, "")),
                str(twin.get("version", "")),
                ", ".join(f"{k}={v}" for k, v in sorted((thing.get("labels") or {}).items())),
            )
        self.console.print(table)
        self._footer(len(items), "Thing", more)

    def events(
        self, items: list[dict[str, Any]], *, with_thing: bool = True, more: bool = False
    ) -> None:
        if self.json_mode:
            self.json(items)
            return
        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("SEQ", justify="right", no_wrap=True)
        table.add_column("TIME", no_wrap=True)
        table.add_column("TYPE", no_wrap=True)
        if with_thing:
            table.add_column("THING", no_wrap=True)
        table.add_column("ACTOR")
        # Folded onto more lines when the terminal is narrow, never cut off.
        table.add_column("CHANGE", overflow="fold")
        for event in items:
            row = [str(event.get("seq", "")), short_time(event.get("ts")), str(event.get("type"))]
            if with_thing:
                row.append(record_of(event))
            row += [str(event.get("actor") or ""), summary(event)]
            table.add_row(*row)
        self.console.print(table)
        self._footer(len(items), "event", more)

    def event_line(self, event: dict[str, Any]) -> None:
        """One live event: a compact JSON line in JSON mode, a readable line otherwise."""
        if self.json_mode:
            self.json(event, compact=True)
            return
        line = Text()
        line.append(f"{event.get('seq', ''):>6} ", style="dim")
        line.append(short_time(event.get("ts")) + " ", style="dim")
        line.append(f"{event.get('type', '')!s:<17} ", style="bold")
        line.append(f"{record_of(event)} ", style="cyan")
        line.append(f"{event.get('actor') or ''} ")
        line.append(summary(event))
        self.console.print(line, soft_wrap=True)

    def _footer(self, count: int, noun: str, more: bool) -> None:
        plural = noun if count == 1 else f"{noun}s"
        hint = " (more: raise --limit or use --all)" if more else ""
        self.stderr.print(Text(f"{count} {plural}{hint}", style="dim"))


STATUS_STYLE = {"in_sync": "green", "pending": "yellow", "drifted": "red", "unreachable": "red"}


def short_time(ts: object) -> str:
    """`2026-11-22T08:11:44.123456Z` -> `2026-11-22 08:11:44` (full value in --json)."""
    text = str(ts or "")
    return text[:19].replace("T", " ") if len(text) >= 19 else text


def summary(event: dict[str, Any]) -> str:
    """The change, compact (a long patch is cut; --json has it whole), and the cause whole
    when someone gave one: it is the one thing here a person wrote."""
    patch = event.get("patch")
    text = "-" if patch is None else orjson.dumps(patch).decode()
    if len(text) > SUMMARY_WIDTH:
        text = text[: SUMMARY_WIDTH - 1] + "…"
    cause = event.get("cause")
    # Without X-Iotas-Cause the server records the request line; that adds nothing here.
    if cause and not REQUEST_LINE.match(str(cause)):
        text += f"  ({cause})"
    return text


def record_of(event: dict[str, Any]) -> str:
    """What a journal entry is about: a Thing's id, or the kind and id of another record."""
    if "thing_id" in event:
        return str(event["thing_id"])
    return f"{event.get('kind', '')} {event.get('record_id', '')}".strip()
