"""The bulk desired patch grows with the number of Things, not faster: the statements it runs
per Thing stay the same from a small fleet to one four times as large."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine

from iotas.runtime import Runtime
from iotas.services.context import Actor, Context

CTX = Context(Actor("tester"), "test")


def _sync_engine(rt: Runtime) -> Engine:
    engine: Any = getattr(rt.store, "engine")  # noqa: B009 (both stores have one)
    return engine.sync_engine if isinstance(engine, AsyncEngine) else engine


async def _statements_of_bulk(rt: Runtime, kind: str, count: int) -> int:
    for i in range(count):
        await rt.registry.create(CTX, {"id": f"acme:{kind}-{i:04d}", "kind": kind})
    seen: list[str] = []

    def count_one(*args: Any) -> None:
        seen.append(args[2])

    engine = _sync_engine(rt)
    event.listen(engine, "before_cursor_execute", count_one)
    try:
        matched, changed = await rt.registry.patch_desired_where(
            CTX, f'kind == "{kind}"', {"on": True}, page=50
        )
    finally:
        event.remove(engine, "before_cursor_execute", count_one)
    assert (matched, changed) == (count, count)
    return len(seen)


async def test_bulk_desired_patch_statements_are_linear_in_things(rt: Runtime) -> None:
    small = await _statements_of_bulk(rt, "small", 50)
    large = await _statements_of_bulk(rt, "large", 200)
    # Four times the Things: at most four times the statements (a few more pages of the
    # query aside), and a bounded number per Thing.
    assert large <= 4 * small + 10, (small, large)
    assert large / 200 <= 6, (small, large)
