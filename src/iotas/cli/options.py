"""Options shared by many commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print JSON only (for scripts); same as `iotas --json`.")
]
Cause = Annotated[
    str | None,
    typer.Option("--cause", help="Why: recorded as the journal event's cause.", metavar="TEXT"),
]
File = Annotated[
    Path | None,
    typer.Option("--file", "-f", help="Read the JSON document from a file ('-' for stdin)."),
]
Limit = Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most N items.")]
