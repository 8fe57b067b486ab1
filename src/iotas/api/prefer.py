"""The `Prefer` request header (RFC 7240) as far as iotas honours it: `wait=N` (how long the
client is willing to wait for an answer) and `respond-async` (answer at once; the client
follows the work up itself). Anything else, and anything malformed, is ignored, as the RFC
asks of preferences a server does not understand."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Longer waits are read as this many seconds (the callers cap further).
MAX_WAIT_S = 3600


@dataclass(frozen=True, slots=True)
class Preferences:
    wait: int | None = None
    respond_async: bool = False


def preferences(headers: Iterable[str]) -> Preferences:
    """The preferences in every `Prefer` header given (the first `wait` counts)."""
    wait: int | None = None
    respond_async = False
    for header in headers:
        for preference in header.split(","):
            # A preference's own parameters (`; ...`) change nothing iotas honours.
            token = preference.split(";", 1)[0].strip()
            name, _, value = token.partition("=")
            name, value = name.strip().lower(), value.strip().strip('"')
            if name == "respond-async" and not value:
                respond_async = True
            elif name == "wait" and wait is None and value.isascii() and value.isdigit():
                wait = min(int(value[:6]), MAX_WAIT_S)
    return Preferences(wait, respond_async)
