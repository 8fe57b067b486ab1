"""Stopping background tasks within a bound.

A task that swallows its cancellation, or awaits something that never comes in a `finally`,
would otherwise hang shutdown for ever (and with it `iotas up`'s Ctrl-C or a test run). What
does not finish within the bound is logged by name and left to die with the event loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger("iotas.aio")

STOP_WITHIN_S = 5.0


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[object] | None], within: float = STOP_WITHIN_S
) -> None:
    """Cancel every task and wait up to `within` seconds for all of them to end. Never raises
    what the tasks raised (their results are read, so nothing warns of an unretrieved one)."""
    pending = [task for task in tasks if task is not None]
    for task in pending:
        task.cancel()
    if not pending:
        return
    _, stuck = await asyncio.wait(pending, timeout=within)
    for task in pending:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.warning("task %s ended with %r", task.get_name(), task.exception())
    for task in stuck:
        log.error("task %s did not end within %.0f s of being cancelled", task.get_name(), within)
