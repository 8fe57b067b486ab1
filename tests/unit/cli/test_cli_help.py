"""`--help` of every command shows boolean flags as plain flags (issue 12, item 15): typer's
rich help printed `--json <bool>`, as if the flag took a value."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from iotas.cli.main import app


def command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    # typer carries its own copy of click, so groups are recognised by their commands.
    for name, sub in getattr(command, "commands", {}).items():
        yield from command_paths(sub, (*path, name))


PATHS = list(command_paths(typer.main.get_command(app)))


def test_every_command_is_walked() -> None:
    assert ("things", "quarantine") in PATHS and ("snapshots", "get") in PATHS


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "iotas")
def test_help_shows_flags_without_a_value(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output, result.output
    # Each flag's line has its help text right after the flag name, with no value.
    assert re.search(r"^\s*(-h, )?--help\s+Show this message", result.output, re.M), result.output
