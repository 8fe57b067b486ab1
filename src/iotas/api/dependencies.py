"""The dependencies a route runs, its own and theirs: where a route's declarations
(its permission in `security.py`, its body in `bodies.py`) are found."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from starlette.routing import BaseRoute


def calls(route: BaseRoute) -> Iterator[Any]:
    """Every dependency callable of `route` (nothing for a route that is not FastAPI's)."""
    pending: list[Dependant] = [d for d in [getattr(route, "dependant", None)] if d is not None]
    while pending:
        dependant = pending.pop()
        yield dependant.call
        pending.extend(dependant.dependencies)
