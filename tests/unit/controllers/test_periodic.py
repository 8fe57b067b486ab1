"""`Periodic`, the base under periodic work: a round now, then one per interval on the
controller's clock (a `ManualClock` here, stepped by hand), or sooner when woken; a failed
round is logged and the next runs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from iotas.controllers.clock import ManualClock
from iotas.controllers.periodic import Periodic

LOG = logging.getLogger("test.periodic")


async def _until(check: Callable[[], bool], within: float = 5.0) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0)

    await asyncio.wait_for(poll(), within)


async def test_rounds_follow_the_clock_and_a_failure_does_not_end_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    seen: list[int] = []

    async def round_(now_us: int) -> int:
        seen.append(now_us)
        if len(seen) == 2:
            raise RuntimeError("the database is away")
        return len(seen)

    work = Periodic(
        "test", round_, interval=60, log=LOG, done="did %d", failed="round failed", clock=clock
    )
    with caplog.at_level(logging.INFO, logger="test.periodic"):
        work.start()
        await _until(lambda: work.rounds == 1 and clock.sleepers == 1)
        clock.advance(59)  # not yet
        await asyncio.sleep(0.01)
        assert work.rounds == 1
        clock.advance(1)
        await _until(lambda: work.rounds == 2 and clock.sleepers == 1)
        clock.advance(60)
        await _until(lambda: work.rounds == 3)
        await work.stop()
    start = seen[0]
    assert seen == [start, start + 60_000_000, start + 120_000_000]
    assert work.failures == 1
    assert [r.getMessage() for r in caplog.records] == ["did 1", "round failed", "did 3"]
    assert caplog.records[1].exc_info is not None


async def test_a_wake_runs_the_next_round_at_once() -> None:
    clock = ManualClock()
    rounds = 0

    async def round_(_now_us: int) -> int:
        nonlocal rounds
        rounds += 1
        return 0

    work = Periodic("test", round_, interval=3600, log=LOG, clock=clock)
    work.start()
    await _until(lambda: rounds == 1 and clock.sleepers == 1)
    work.wake()
    await _until(lambda: rounds == 2)
    await work.stop()


async def test_run_once_is_one_round_on_the_clock() -> None:
    clock = ManualClock(now_us=42)
    work = Periodic("test", lambda now_us: _echo(now_us), interval=1, log=LOG, clock=clock)
    assert await work.run_once() == 42
    assert work.rounds == 0  # only the loop counts rounds


async def _echo(value: int) -> int:
    return value
