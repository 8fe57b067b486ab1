"""The per-device budget: bursts pass, a flood is cut to the rate, other devices unaffected."""

from __future__ import annotations

import pytest

from iotas.adapters.mqtt import flood
from iotas.adapters.mqtt.flood import FloodGuard


def test_a_burst_passes_then_the_rate_holds() -> None:
    guard = FloodGuard(rate=8, burst=5)
    assert [guard.allow("a:1", 0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    # One second later eight more tokens, capped at the burst of five.
    assert sum(guard.allow("a:1", 1.0) for _ in range(20)) == 5
    # A device at its rate is never refused (steps exact in binary floating point).
    assert all(guard.allow("a:1", 1.0 + 0.125 * (i + 1)) for i in range(30))


def test_devices_have_their_own_budgets() -> None:
    guard = FloodGuard(rate=1, burst=2)
    assert sum(guard.allow("a:flood", 0.0) for _ in range(100)) == 2
    assert guard.allow("a:quiet", 0.0) and guard.allow("a:quiet", 0.0)


def test_rate_zero_is_off_and_bad_settings_are_refused() -> None:
    guard = FloodGuard(rate=0, burst=1)
    assert all(guard.allow("a:1", 0.0) for _ in range(1000))
    with pytest.raises(ValueError):
        FloodGuard(rate=-1, burst=5)
    with pytest.raises(ValueError):
        FloodGuard(rate=1, burst=0)


def test_full_buckets_are_forgotten_so_memory_stays_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(flood, "PRUNE_AT", 10)
    guard = FloodGuard(rate=1, burst=3)
    for i in range(10):
        guard.allow(f"a:{i}", 0.0)
    guard.allow("a:busy", 0.0)  # pruning at t=0: no bucket is full yet, all are kept
    assert len(guard) == 11
    guard.allow("a:late", 100.0)  # threshold doubled, no pruning yet
    for i in range(10, 30):
        guard.allow(f"a:{i}", 100.0)
    assert len(guard) < 25  # the ones refilled by t=100 were dropped


def test_reserve_never_refuses_but_makes_a_flood_wait_its_turn() -> None:
    guard = FloodGuard(rate=4, burst=2)
    waits = [guard.reserve("a:1", 0.0) for _ in range(6)]
    assert waits == [0.0, 0.0, 0.25, 0.5, 0.75, 1.0]
    # While in debt, QoS 0 traffic is refused; once the debt is paid it flows again.
    assert not guard.allow("a:1", 0.5)
    assert guard.allow("a:1", 1.25)
    assert guard.reserve("a:other", 0.0) == 0.0
