"""The embedded broker checks at most LOGINS_AT_ONCE_PER_SOURCE logins of one source at once;
the others wait their turn rather than being refused (decision 42)."""

from __future__ import annotations

import asyncio
from typing import Any

from iotas.broker.gate import LOGINS_AT_ONCE_PER_SOURCE, BrokerGate
from iotas.services.auth import Authenticator
from iotas.services.stats import IngestStats


def gate() -> BrokerGate:
    unused: Any = None  # the login check is passed in; nothing else of the gate is used
    return BrokerGate(
        credentials=unused,
        messages=unused,
        registry=unused,
        stats=IngestStats(),
        # Next to no refill: the counts below must not depend on how long a loaded machine
        # takes to run the 40 checks.
        logins=Authenticator(unused, failure_burst=3, failure_refill=1e-6),
    )


async def test_a_burst_of_good_logins_from_one_source_waits_its_turn_and_gets_in() -> None:
    g = gate()
    running = peak = 0

    async def check() -> str | None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return "acme:x"

    results = await asyncio.gather(*(g._limited("10.0.0.1", check()) for _ in range(100)))
    assert results == ["acme:x"] * 100
    assert peak == LOGINS_AT_ONCE_PER_SOURCE
    assert g._checking == {}  # nothing kept for a source with nothing in flight


async def test_once_a_source_has_failed_its_logins_reserve_and_are_refused_past_the_allowance() -> (
    None
):
    g = gate()

    async def wrong() -> str | None:
        await asyncio.sleep(0.01)
        return None

    # 40 wrong at once from a clean source: the first 32 are checked (nothing reserved), their
    # failures cost one each; the 8 that waited find the allowance (3) spent and are refused.
    results = await asyncio.gather(*(g._limited("10.0.0.2", wrong()) for _ in range(40)))
    assert results == [None] * 40
    assert g.logins is not None and g.logins.failures["mqtt"] == LOGINS_AT_ONCE_PER_SOURCE
    assert g.stats.rejected["login_rate_limited"] == 40 - LOGINS_AT_ONCE_PER_SOURCE
