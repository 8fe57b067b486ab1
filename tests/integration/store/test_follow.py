"""`follow`, the one journal follower: every later event exactly once, in order, of the types
asked for; an empty batch when it has caught up; woken at once by a commit in this process."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from iotas.domain.journal import DESIRED_CHANGED, THING_CREATED
from iotas.runtime import Runtime
from iotas.services.context import Actor, Context
from iotas.services.follow import MIN_GAP_SECONDS, follow, follow_reads
from iotas.services.stream import JournalSignal

CTX = Context(Actor("test", role="admin"), "follow test")


async def test_follow_yields_each_later_event_once_and_wakes_on_a_commit(rt: Runtime) -> None:
    await rt.registry.create(CTX, {"id": "acme:a", "kind": "sensor"})
    start = await rt.journal.head_seq()
    for n in range(3):
        await rt.registry.patch_twin(CTX, "acme:a", "desired", {"n": n})
    await rt.registry.create(CTX, {"id": "acme:b", "kind": "sensor"})
    # A long idle wait: only a commit can end it soon enough for the bound below.
    batches = follow(rt.journal, rt.signal, start, types=[DESIRED_CHANGED], batch=2, idle=60)
    seen: list[dict[str, object]] = []
    while len(seen) < 3:
        seen.extend(await anext(batches))
    assert [e["patch"] for e in seen] == [{"n": 0}, {"n": 1}, {"n": 2}]

    # Caught up (the creation of acme:b is not asked for): it waits for the next commit.
    async def next_batch() -> list[dict[str, Any]]:
        return await anext(batches)

    later = asyncio.create_task(next_batch())
    await rt.registry.patch_twin(CTX, "acme:b", "desired", {"n": 9})
    woken = await asyncio.wait_for(later, 10)
    assert [(e["thing_id"], e["type"]) for e in woken] == [("acme:b", DESIRED_CHANGED)]
    await batches.aclose()


async def test_follow_by_kind_keeps_what_it_asks_for(rt: Runtime) -> None:
    start = await rt.journal.head_seq()
    caught_up = follow(rt.journal, rt.signal, start, idle=60)
    assert await anext(caught_up) == []  # nothing yet: said at once
    await caught_up.aclose()
    await rt.registry.create(CTX, {"id": "acme:c", "kind": "sensor"})
    await rt.tokens.create(CTX, {"subject": "ci", "role": "viewer"})
    things = follow(rt.journal, rt.signal, start, idle=60)  # Things by default
    tokens = follow(rt.journal, rt.signal, start, kinds={"token"}, idle=60)
    every = follow(rt.journal, rt.signal, start, kinds=None, idle=60)
    assert [e["type"] for e in await anext(things)] == [THING_CREATED]
    assert [e["type"] for e in await anext(tokens)] == ["token_created"]
    assert [e["type"] for e in await anext(every)] == [THING_CREATED, "token_created"]
    for follower in (things, tokens, every):
        await follower.aclose()


async def test_a_follower_reads_commits_that_come_close_together_at_once() -> None:
    """Commits every millisecond (as 1,000 updates a second make): the follower does not
    read after each, but at most once per `MIN_GAP_SECONDS`, and still sees every commit."""
    signal = JournalSignal()
    loop = asyncio.get_running_loop()
    reads: list[tuple[float, int]] = []

    async def read(_after: int, _limit: int) -> list[dict[str, Any]]:
        reads.append((loop.time(), signal.last_seq))  # what this read covers
        return []

    async def commit() -> None:
        for seq in range(1, 101):
            await asyncio.sleep(0.001)
            signal.committed(seq)

    batches = follow_reads(signal, read, 0, idle=60)
    committing = asyncio.create_task(commit())
    while not committing.done() or reads[-1][1] < 100:
        await asyncio.wait_for(anext(batches), 10)
    await batches.aclose()
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(reads)]
    # The loop's timers may fire up to a millisecond early (uvloop rounds to milliseconds).
    assert min(gaps) >= MIN_GAP_SECONDS - 0.002, gaps
    assert len(reads) < 60  # 100 commits: without the gap, about one read each


async def test_commits_of_other_types_cause_no_read(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A follower of desired changes does not read the journal after each reported change of
    this process (each read cost the reader threads, and the loop their GIL), yet wakes at
    once on a desired change."""
    await rt.registry.create(CTX, {"id": "acme:d", "kind": "sensor"})
    reads = 0
    feed = rt.journal.feed

    async def counted(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        nonlocal reads
        reads += 1
        return await feed(*args, **kwargs)

    monkeypatch.setattr(rt.journal, "feed", counted)
    start = await rt.journal.head_seq()
    batches = follow(rt.journal, rt.signal, start, types=[DESIRED_CHANGED], idle=60)
    assert await anext(batches) == []
    assert reads == 1

    async def next_batch() -> list[dict[str, Any]]:
        return await anext(batches)

    later = asyncio.create_task(next_batch())
    for n in range(20):
        await rt.registry.patch_twin(CTX, "acme:d", "reported", {"n": n})
    assert not later.done()  # no read, so no empty batch either
    await rt.registry.patch_twin(CTX, "acme:d", "desired", {"n": 1})
    woken = await asyncio.wait_for(later, 10)
    assert [(e["thing_id"], e["type"]) for e in woken] == [("acme:d", DESIRED_CHANGED)]
    assert reads == 2
    await batches.aclose()
