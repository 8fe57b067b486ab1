"""Expired directory registrations, with the directory's clock in the test's hands: hidden at
once from every read, then deleted (journaled) by the bounded sweep; on both backends."""

from __future__ import annotations

from typing import Any

import pytest

from iotas.domain import clock
from iotas.domain import journal as ev
from iotas.domain.errors import NotFound
from iotas.runtime import Runtime
from iotas.services import directory as directory_module
from iotas.services.context import Actor, Context
from iotas.services.directory import Directory

CTX = Context(Actor("tester"), "test")
HOUR_US = 3600 * 1_000_000


def bare(td_id: str, ttl: float | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": td_id,
        "title": td_id,
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
    }
    if ttl is not None:
        doc["registration"] = {"ttl": ttl}
    return doc


class Clock:
    def __init__(self) -> None:
        self.us = clock.now_us()

    def __call__(self) -> int:
        return self.us


async def test_expired_registrations_are_hidden_then_purged(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = Clock()
    tdd = Directory(rt.registry, rt.store, now=now)
    for i in range(5):
        await tdd.put(CTX, f"urn:short:{i}", bare(f"urn:short:{i}", ttl=3600))
    await tdd.put(CTX, "urn:long:0", bare("urn:long:0", ttl=3 * 3600))
    await tdd.put(CTX, "urn:forever:0", bare("urn:forever:0"))
    assert (await tdd.page(0, 100))[1] == 7

    now.us += 2 * HOUR_US
    entries, total = await tdd.page(0, 100)
    assert total == 2 and {e[0].description["id"] for e in entries if e[0].description} == {
        "urn:long:0",
        "urn:forever:0",
    }
    with pytest.raises(NotFound):
        await tdd.entry("urn:short:0")
    ids = await tdd.search_jsonpath("$[*].id", lambda e: e[0].description or {})
    assert sorted(ids) == ["urn:forever:0", "urn:long:0"]
    # Still in the registry until the sweep: hidden, not yet deleted.
    assert len(await rt.registry.select(None, limit=100, after_id=None)) == 7

    # One renewed in time with a longer ttl is kept (registration times are the store's).
    now.us -= 2 * HOUR_US
    await tdd.patch(CTX, "urn:short:4", {"registration": {"ttl": 3 * 3600}})
    now.us += 2 * HOUR_US

    # Bounded: two per transaction, one transaction per round.
    monkeypatch.setattr(directory_module, "PURGE_BATCH", 2)
    monkeypatch.setattr(directory_module, "PURGE_ROUNDS", 1)
    assert await tdd.purge_expired(now.us) == 2
    monkeypatch.setattr(directory_module, "PURGE_ROUNDS", 10)
    assert await tdd.purge_expired(now.us) == 2
    assert await tdd.purge_expired(now.us) == 0
    left = await rt.registry.select(None, limit=100, after_id=None)
    assert sorted(t.description["id"] for t in left if t.description) == [
        "urn:forever:0",
        "urn:long:0",
        "urn:short:4",
    ]
    deletions = [e for e in await rt.journal.feed(0, 1000) if e["type"] == ev.THING_DELETED]
    assert len(deletions) == 4
    assert {e["actor"] for e in deletions} == {"tdd"}
    assert all(e["cause"] == "its directory registration expired" for e in deletions)
    assert (await rt.journal.verify()).ok


async def test_the_sweep_leaves_a_registration_renewed_after_it_was_found(rt: Runtime) -> None:
    now = Clock()
    tdd = Directory(rt.registry, rt.store, now=now)
    await tdd.put(CTX, "urn:a:1", bare("urn:a:1", ttl=60))
    thing = await tdd.thing("urn:a:1")
    later = now.us + HOUR_US
    # Found expired, then renewed before its deletion runs: the deletion re-checks and skips.
    await tdd.put(CTX, "urn:a:1", bare("urn:a:1", ttl=3 * 3600))
    assert await tdd._purge([thing.id], later) == 0
    assert (await tdd.thing("urn:a:1")).id == thing.id
