"""A Thing with an `expected_interval` that stays silent longer than that is unreachable."""

from __future__ import annotations

import pytest

from iotas.domain import clock
from iotas.domain.things import Thing

SEEN = "2026-11-28T10:00:00.000000Z"
SEEN_US = clock.parse_rfc3339(SEEN)
SECOND = 1_000_000


def sensor(interval: object = 60, *, connected: bool = False, seen: str | None = SEEN) -> Thing:
    return Thing(
        "acme:s-1",
        "sensor",
        attributes={"expected_interval": interval},
        connected=connected,
        last_seen=seen,
    )


def test_silent_longer_than_the_interval_is_unreachable() -> None:
    thing = sensor(60)
    assert not thing.unreachable(SEEN_US + 60 * SECOND)
    assert thing.unreachable(SEEN_US + 60 * SECOND + 1)
    doc = thing.to_dict(SEEN_US + 61 * SECOND)
    assert doc["twin"]["status"] == "unreachable"
    assert thing.twin_dict(SEEN_US + 59 * SECOND)["status"] == "in_sync"


@pytest.mark.parametrize("interval", [None, "60", True, 0, -5, [60]])
def test_without_a_positive_number_of_seconds_nothing_is_judged(interval: object) -> None:
    assert not sensor(interval).unreachable(SEEN_US + 10**6 * SECOND)


def test_a_connected_thing_or_one_never_heard_from_is_not_unreachable() -> None:
    later = SEEN_US + 3600 * SECOND
    assert not sensor(1, connected=True).unreachable(later)
    assert not sensor(1, seen=None).unreachable(later)


def test_fractional_intervals_count() -> None:
    thing = sensor(0.5)
    assert thing.unreachable(SEEN_US + SECOND)
    assert not thing.unreachable(SEEN_US + SECOND // 4)
