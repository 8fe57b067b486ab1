"""`iotas.aio.every`: the loop under periodic work lives through a failed round and logs what
a round did."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from iotas.aio import every


async def test_a_failed_round_is_logged_and_the_next_runs(caplog: pytest.LogCaptureFixture) -> None:
    rounds: list[int] = []
    fourth = asyncio.Event()

    async def round_() -> int:
        rounds.append(len(rounds))
        if len(rounds) == 1:
            raise RuntimeError("the database is away")
        if len(rounds) == 4:
            fourth.set()
            await asyncio.Event().wait()  # stays here until cancelled
        return {2: 0, 3: 2}[len(rounds)]  # only a round that did something is logged

    log = logging.getLogger("test.every")
    with caplog.at_level(logging.INFO, logger="test.every"):
        task = asyncio.create_task(every(0, round_, log, done="did %d", failed="round failed"))
        await asyncio.wait_for(fourth.wait(), 10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["round failed", "did 2"]
    assert caplog.records[0].exc_info is not None
