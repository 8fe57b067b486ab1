"""The fleet's pacing: total rate, catching up within a bound, rotation, random failures."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from iotas.sim.pacing import Pacer, Rotation, drops_now


def test_the_pacer_hands_out_rate_tokens_per_second() -> None:
    pacer = Pacer(10.0, start=100.0)
    assert pacer.take(100.0) == 0
    assert pacer.take(100.05) == 0  # half a token is not a token
    assert pacer.take(100.1) == 1
    taken = sum(pacer.take(100.1 + step / 100) for step in range(1, 991))
    assert pacer.take(110.0) + taken + 1 == 100  # 10 s at 10/s, however it is sliced
    assert pacer.skipped == 0


def test_fractional_rates_and_next_due_time() -> None:
    pacer = Pacer(0.5, start=0.0)
    assert pacer.next_at() == 2.0
    assert pacer.take(1.9) == 0 and pacer.take(2.0) == 1
    assert pacer.next_at() == 4.0


def test_falling_behind_gives_up_the_excess_instead_of_bursting() -> None:
    pacer = Pacer(100.0, start=0.0, max_backlog=0.5)
    assert pacer.take(10.0) == 50  # half a second's worth, not 1,000 at once
    assert pacer.skipped == 950
    assert pacer.take(10.01) == 1  # and then on schedule again
    assert pacer.take(10.01) == 0


@pytest.mark.parametrize("rate", [0.0, -1.0, math.inf, math.nan])
def test_rates_must_be_positive_and_finite(rate: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        Pacer(rate, start=0.0)


def test_rotation_visits_every_item_equally_in_a_fixed_shuffled_order() -> None:
    items = list(range(10))
    rotation = Rotation(items, random.Random(7))
    first = [rotation.next() for _ in range(10)]
    assert Counter(first) == Counter(items) and first != items  # each once, shuffled
    assert [rotation.next() for _ in range(10)] == first
    counts = Counter(rotation.next() for _ in range(1000))
    assert set(counts.values()) == {100}


def test_rotation_takes_in_items_added_later_and_is_empty_safe() -> None:
    items: list[str] = []
    rotation = Rotation(items, random.Random(1))
    assert rotation.next() is None
    items.append("a")
    assert rotation.next() == "a"
    items.extend(["b", "c"])
    assert {rotation.next() for _ in range(3)} == {"a", "b", "c"}


def test_random_drops_average_one_per_mean_uptime() -> None:
    rng = random.Random(3)
    seconds = 100_000
    drops = sum(drops_now(rng, 1.0, 50.0) for _ in range(seconds))
    assert drops == pytest.approx(seconds / 50.0, rel=0.1)
