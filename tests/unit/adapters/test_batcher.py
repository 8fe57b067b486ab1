"""The telemetry batcher: one commit for the messages of a window, a shared answer, and a
longer window only while messages arrive fast."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

import pytest

from iotas.adapters.mqtt.batcher import TelemetryBatcher
from iotas.domain.telemetry import Sample

SAMPLE: list[Sample] = [Sample("t", 1_700_000_000_000_000, 21.5, None)]


class Flushes:
    def __init__(self, unknown: Collection[str] = (), fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.unknown = frozenset(unknown)
        self.fail = fail

    async def __call__(self, batch: list[tuple[str, list[Sample]]]) -> Collection[str]:
        self.batches.append([thing_id for thing_id, _ in batch])
        if self.fail:
            raise OSError("the database is away")
        return self.unknown & {thing_id for thing_id, _ in batch}


async def test_messages_of_one_window_share_one_commit_and_its_answer() -> None:
    flushes = Flushes(unknown={"a:gone"})
    batcher = TelemetryBatcher(flushes, window=0.02)
    first = batcher.join("a:1", SAMPLE)
    second = batcher.join("a:gone", SAMPLE)
    assert first is second
    assert await first == {"a:gone"}
    assert flushes.batches == [["a:1", "a:gone"]]
    assert batcher.join("a:1", SAMPLE) is not first  # the next window, the next commit
    await batcher.drain()


async def test_a_full_batch_is_cut_at_once() -> None:
    flushes = Flushes()
    batcher = TelemetryBatcher(flushes, max_messages=3, window=10.0)
    futures = [batcher.join(f"a:{i}", SAMPLE) for i in range(4)]
    await asyncio.wait_for(futures[0], 1.0)
    assert flushes.batches == [["a:0", "a:1", "a:2"]]
    await batcher.drain()
    assert flushes.batches[1] == ["a:3"]


async def test_a_failed_commit_fails_every_message_of_it() -> None:
    batcher = TelemetryBatcher(Flushes(fail=True), window=0.01)
    joined = batcher.join("a:1", SAMPLE)
    with pytest.raises(OSError, match="away"):
        await joined


async def test_the_window_grows_while_messages_arrive_fast_and_shrinks_after() -> None:
    flushes = Flushes()
    batcher = TelemetryBatcher(
        flushes,
        window=0.01,
        busy_window=0.1,
        busy_rate=200.0,
        rate_period=0.05,
        max_messages=10_000,
    )
    # About 100 messages in 60 ms, some 1,600 a second: busy even if a loaded machine stretches
    # those 60 ms eightfold.
    for i in range(6):
        for j in range(16):
            batcher.join(f"a:{i}-{j}", SAMPLE)
        await asyncio.sleep(0.01)
    await batcher.drain()
    assert batcher._window == 0.1
    # Then a message now and then: back to the short window once a period has passed.
    for _ in range(2):
        await batcher.join("a:late", SAMPLE)
    assert batcher._window == 0.01


async def test_a_cancelled_commit_cancels_its_messages_instead_of_leaving_them_waiting() -> None:
    started = asyncio.Event()

    async def slow(batch: list[tuple[str, list[Sample]]]) -> Collection[str]:
        started.set()
        await asyncio.sleep(10)
        return ()

    batcher = TelemetryBatcher(slow, window=0.001)
    joined = batcher.join("a:1", SAMPLE)
    await started.wait()
    for task in list(batcher._tasks):
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(joined, 1.0)
