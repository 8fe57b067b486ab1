"""Query parameters shared by list routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from iotas.domain import clock

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page (1-1000)")]
Cursor = Annotated[
    str | None, Query(max_length=2000, description="The `next` value of the previous page")
]


def instant(value: str | None, name: str) -> int | None:
    return None if value is None else clock.parse_rfc3339(value, name=name)
