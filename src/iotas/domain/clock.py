"""Instants as integer microseconds since the epoch, shown as RFC 3339 in UTC."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from iotas.domain.errors import InvalidInput

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def now_us() -> int:
    return time.time_ns() // 1000


def to_rfc3339(us: int) -> str:
    """Fixed width (`2026-11-22T08:11:44.123456Z`), so strings sort like instants."""
    seconds, micros = divmod(us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{micros:06d}Z"


def parse_rfc3339(text: str, *, name: str = "time") -> int:
    """Parse an RFC 3339 instant (an offset or `Z` is required) into microseconds."""
    candidate = text.strip()
    if candidate.endswith(("z", "Z")):
        candidate = candidate[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or "T" not in candidate.upper():
        raise InvalidInput(
            f"{name} must be an RFC 3339 instant with a time zone, such as "
            f"2026-11-22T08:00:00Z; got {text[:60]!r}",
            field=name,
        )
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
