"""Read positions: opaque pagination cursors, and the journal seqs clients resume after.

A position ends up as an SQL integer, and both SQLite's INTEGER and PostgreSQL's bigint stop
at 2^63-1: a larger one, in a query parameter, a header or a made-up cursor, would fail in the
driver (OverflowError, a 500) instead of being refused as the caller's mistake.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

import orjson

from iotas.domain.errors import InvalidInput

MAX_POSITION: Final = 2**63 - 1
_MIN_POSITION: Final = -(2**63)


def encode(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")


def decode(cursor: str, *, expect: str, kind: type[Any]) -> Any:
    """The value stored under `expect`, or InvalidInput for anything we did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = orjson.loads(raw)
    except (binascii.Error, ValueError):
        position = None
    if (
        not isinstance(position, dict)
        or not isinstance(position.get(expect), kind)
        or isinstance(position.get(expect), bool)
        or not _storable(position[expect])
    ):
        raise InvalidInput(
            "the cursor is not one this list issued: pass back the 'next' value unchanged",
            field="cursor",
        )
    return position[expect]


def seq(text: str, name: str) -> int:
    """A journal seq sent as text (`Last-Event-ID`): ASCII digits, at most MAX_POSITION."""
    value = position(text.strip())
    if value is None:
        raise InvalidInput(
            f"{name} must be the seq of the last event received: a whole number from 0 to "
            f"{MAX_POSITION}, not {text[:40]!r}",
            field=name,
        )
    return value


def position(digits: str) -> int | None:
    """`digits` as a position from 0 to MAX_POSITION, or None if it is not one."""
    # isdigit() alone takes '²' and other digits that int() refuses; the length check keeps
    # int() away from a megabyte of digits.
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
        return None
    value = int(digits)
    return value if value <= MAX_POSITION else None


def _storable(value: Any) -> bool:
    """No integer in a decoded position that the database cannot hold (orjson reads up to
    2^64-1; telemetry cursors nest theirs in an object)."""
    if isinstance(value, int):
        return _MIN_POSITION <= value <= MAX_POSITION
    if isinstance(value, dict):
        return all(_storable(v) for v in value.values())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True
