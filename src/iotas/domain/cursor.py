"""Opaque pagination cursors: what a page ended at, encoded so clients do not build them."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from iotas.domain.errors import InvalidInput


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
    ):
        raise InvalidInput(
            "the cursor is not one this list issued: pass back the 'next' value unchanged",
            field="cursor",
        )
    return position[expect]
